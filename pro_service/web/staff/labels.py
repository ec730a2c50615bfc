"""Words for the states the staff pages show, in one place (board, patient page, actions)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

#: A time point as nurses see it (``scheduling.assessments.display_status``).
TIMEPOINT_STATUS = {
    "upcoming": _l("Upcoming"),
    "open": _l("Open"),
    "in_progress": _l("In progress"),
    "overdue": _l("Overdue"),
    "completed": _l("Completed"),
    # Translators: a time point whose window closed with some answers but no final submit.
    "partial": _l("Partly answered"),
    "missed": _l("Missed"),
    "cancelled": _l("Cancelled"),
}
#: A shape per time point status, so pages read without colour (the word is always there too).
TIMEPOINT_SYMBOLS = {
    "upcoming": "○",
    "open": "◇",
    "in_progress": "◐",
    "overdue": "!",
    "completed": "✓",
    "partial": "◑",
    "missed": "✗",
    "cancelled": "–",
}
#: A patient's participation.
PATIENT_STATUS = {
    "active": _l("Active"),
    "withdrawn": _l("Withdrawn"),
    "deceased": _l("Deceased"),
    "not_operated": _l("Not operated"),
    "completed": _l("Follow-up completed"),
}
