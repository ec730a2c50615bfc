"""The completion board (``/staff/board``): a site's patients by time point, read-only.

The queries live in :mod:`pro_service.patients.board`; this view parses the GET form, picks the
site (404 for a site the user may not see) and renders.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from flask import abort, current_app, g, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_wtf import FlaskForm
from markupsafe import Markup, escape
from wtforms import BooleanField, SelectField

from ...extensions import db
from ...patients.board import DISPLAY_STATUSES, BoardFilters, board_timepoints, load_board
from ...staff import access
from ..i18n import request_language
from ..numbers import whole_number
from . import bp
from .auth import staff_page
from .labels import PATIENT_STATUS as PATIENT_STATUS_LABELS
from .labels import TIMEPOINT_STATUS as STATUS_LABELS
from .labels import TIMEPOINT_SYMBOLS as STATUS_SYMBOLS

MESSAGE_LABELS = {
    "pending": _l("SMS waiting to be sent"),
    "sending": _l("SMS being sent"),
    "sent": _l("SMS sent"),
    "delivered": _l("SMS delivered"),
    "undelivered": _l("SMS not delivered"),
    "failed": _l("SMS failed"),
    "cancelled": _l("SMS cancelled"),
}
K = TypeVar("K")
PAGE_WINDOW = 3  # page links shown on each side of the current page


class BoardForm(FlaskForm):  # type: ignore[misc]
    """The filters: a GET form (nothing changes, so no CSRF token)."""

    class Meta:
        csrf = False

    status = SelectField(_l("Time point status"), default="")
    timepoint = SelectField(_l("Time point"), default="")
    patient_status = SelectField(_l("Participation"), default="")
    opted_out = BooleanField(_l("Opted out of SMS"))
    bad_number = BooleanField(_l("Bad phone number"))
    overdue = BooleanField(_l("Overdue time point"))
    needs_reason = BooleanField(_l("Missed, reason not recorded"))


def _escaped(labels: Mapping[K, object]) -> dict[K, Markup]:
    return {key: escape(str(label)) for key, label in labels.items()}


def _page_number() -> tuple[int, str | None]:
    page = whole_number(request.args.get("page", "1"), high=10**6)
    if page is not None:
        return page, None
    return 1, str(_l("Page: the page number must be a whole number, 1 or more."))


def _page_links(page: int, pages: int) -> list[int | None]:
    """Page numbers to link (None: a gap), e.g. 1 … 4 5 6 [7] 8 9 10 … 100."""
    shown = {1, pages, *range(page - PAGE_WINDOW, page + PAGE_WINDOW + 1)}
    links: list[int | None] = []
    for number in sorted(n for n in shown if 1 <= n <= pages):
        if links and links[-1] is not None and number != links[-1] + 1:
            links.append(None)
        links.append(number)
    return links


@bp.get("/board")
@staff_page(*access.PATIENT_VIEWER_ROLES)
def board() -> ResponseReturnValue:
    session, user = db.session, g.user
    sites = access.visible_sites(session, user)
    raw_site = request.args.get("site")
    if raw_site is not None:
        site_id = whole_number(raw_site)
        if site_id is None:
            abort(404)
        site = access.site_for(session, user, site_id)
    elif sites:
        site = sites[0]
    else:
        return render_template("staff/board.html", site=None, sites=sites)

    schedule = current_app.extensions["schedule"]
    language = request_language()
    timepoint_labels = {
        tp.key: tp.label.get(language) or tp.label["en"] for tp in schedule.timepoints
    }
    keys = board_timepoints(session, site=site, schedule=schedule)

    form = BoardForm(request.args)
    form.status.choices = [("", _l("Any")), *((s, STATUS_LABELS[s]) for s in DISPLAY_STATUSES)]
    form.timepoint.choices = [("", _l("All")), *timepoint_labels.items()]
    form.patient_status.choices = [("", _l("Any")), *PATIENT_STATUS_LABELS.items()]
    page, page_error = _page_number()
    valid = form.validate()
    context: dict[str, Any] = {
        "site": site,
        "sites": sites,
        "form": form,
        "page_error": page_error,
        # Escaped once here rather than in every cell (a page has hundreds of cells).
        "status_labels": _escaped(STATUS_LABELS),
        "status_symbols": _escaped(STATUS_SYMBOLS),
        "message_labels": _escaped(MESSAGE_LABELS),
        "patient_status_labels": _escaped(PATIENT_STATUS_LABELS),
        "timepoint_labels": timepoint_labels,
    }
    if not valid or page_error:
        return render_template("staff/board.html", board=None, **context), 400

    filters = BoardFilters(
        status=form.status.data or None,
        timepoint=form.timepoint.data or None,
        patient_status=form.patient_status.data or None,
        opted_out=form.opted_out.data,
        bad_number=form.bad_number.data,
        overdue=form.overdue.data,
        needs_reason=form.needs_reason.data,
    )
    result = load_board(session, now=g.now, site=site, timepoints=keys, filters=filters, page=page)
    reminders = {c.reminders_sent for row in result.rows for c in row.cells if c is not None}
    args: dict[str, Any] = {k: v for k, v in request.args.items() if k not in ("page", "lang")}
    args["site"] = str(site.id)

    def page_url(number: int) -> str:
        return url_for("staff.board", **args, page=number)

    return render_template(
        "staff/board.html",
        board=result,
        page_url=page_url,
        page_links=_page_links(result.page, result.pages),
        reminder_labels=_escaped(
            {n: ngettext("%(num)d reminder sent", "%(num)d reminders sent", n) for n in reminders}
        ),
        **context,
    )
