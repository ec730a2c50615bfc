"""The patient page: header, time line with messages, score charts; one time point's answers.

Nurses (own sites), investigators and admins; data managers and other sites get 404. No phone
number is shown here (the site's nurses reveal it through an action of ``_actions.html``).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import Response, abort, current_app, g, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import format_decimal
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from ...extensions import db
from ...models import Assessment, Patient
from ...patients import charts
from ...patients import overview as patient_overview
from ...patients.overview import CHART_SCALES, ChangeLine, ScoreSeries
from ...staff import access
from ..i18n import LANGUAGE_NAMES, request_language
from . import bp
from .auth import staff_page
from .labels import PATIENT_STATUS, TIMEPOINT_STATUS
from .missing_data.entry import MODE_LABELS, may_enter
from .missing_data.reasons import MissingReasonForm, missing_reason_context
from .patients import anchor_label

CHANGE_CAUSES = {"surgery_date": _l("Surgery date"), "inclusion_date": _l("Inclusion date")}
MESSAGE_KINDS = {
    "invitation": _l("Invitation"),
    "reminder": _l("Reminder"),
    "resend": _l("Link sent again"),
    "opt_out": _l("Opt-out confirmation"),
    "opt_in": _l("Opt-in confirmation"),
}
MESSAGE_STATUS = {
    "pending": _l("Waiting to be sent"),
    "sending": _l("Being sent"),
    "sent": _l("Sent"),
    "delivered": _l("Delivered"),
    "undelivered": _l("Not delivered"),
    "failed": _l("Failed"),
    "cancelled": _l("Cancelled"),
}


def _language() -> str:
    return request_language()


def _patient_or_404(patient_id: int) -> Patient:
    return access.patient_for(db.session, g.user, patient_id)


def _helpers(time_zone: str) -> dict[str, object]:
    zone = ZoneInfo(time_zone)

    def local_time(value: datetime | None) -> str:
        if value is None:
            return ""
        return value.astimezone(zone).strftime("%Y-%m-%d %H:%M")

    def score(value: float | None) -> str:
        return "" if value is None else format_decimal(value, format="0.0")

    def change(value: float | None) -> str:
        return "" if value is None else format_decimal(value, format="+0.0;-0.0")

    def label(mapping: dict[str, object], key: str | None) -> str:
        return "" if key is None else str(mapping.get(key, key))

    def change_text(change: ChangeLine) -> str:
        """One line of a time point's timeline: what changed, and the recorded reason."""
        cause = str(CHANGE_CAUSES.get(change.cause or "") or anchor_label(change.cause or ""))
        shown = {"scheduled": "upcoming", "expired": "missed"}  # stored -> as nurses see it
        status = label(TIMEPOINT_STATUS, shown.get(change.status_after or "", change.status_after))
        if change.kind == "rescheduled":
            text = _(
                "%(cause)s changed: due %(before)s, now %(after)s (%(status)s)",
                cause=cause,
                before=change.due_before or "",
                after=change.due_after or "",
                status=status,
            )
        elif change.kind == "flagged":
            text = _("%(cause)s changed: the answers are now outside the window", cause=cause)
        elif change.kind == "unflagged":
            text = _("%(cause)s changed: the answers are inside the window again", cause=cause)
        elif change.kind == "cancelled":
            text = _("Cancelled: %(status)s", status=label(PATIENT_STATUS, change.cause))
        elif change.kind == "closed_partial" and change.cause:
            text = _(
                "Closed as partly answered and scored: %(status)s",
                status=label(PATIENT_STATUS, change.cause),
            )
        elif change.kind == "closed_partial":
            text = _("Window closed with answers but no final submit: partly answered, scored")
        elif change.kind == "follow_up":
            text = _(
                "Follow-up after %(status)s: due %(due)s",
                status=label(PATIENT_STATUS, change.cause),
                due=change.due_after or "",
            )
        elif change.kind == "not_expected":
            text = _("Status corrected: no longer expected")
        elif change.kind == "rebuilt":
            text = _("Status corrected: the time point is %(status)s again", status=status)
        elif change.kind == "missing_reason":
            reason = current_app.extensions["missing_reasons"].get(change.value or "")
            text = _(
                "Missing reason recorded: %(reason)s",
                reason=reason.label(_language()) if reason else change.value,
            )
        elif change.kind == "entered":
            text = _("Answers entered: %(mode)s", mode=label(MODE_LABELS, change.value))
        else:
            text = _("Entered answers corrected")
        if change.reason:
            text = _("%(change)s. Reason: %(reason)s", change=text, reason=change.reason)
        return f"{local_time(change.at)[:10]}: {text}"

    return {
        "local_time": local_time,
        "fmt_score": score,
        "fmt_change": change,
        "label_of": label,
        "change_text": change_text,
        "TIMEPOINT_STATUS": TIMEPOINT_STATUS,
        "PATIENT_STATUS": PATIENT_STATUS,
        "MESSAGE_KINDS": MESSAGE_KINDS,
        "MESSAGE_STATUS": MESSAGE_STATUS,
        "LANGUAGES": dict(LANGUAGE_NAMES),
    }


@bp.get("/patients/<id:patient_id>")
@staff_page(*access.PATIENT_VIEWER_ROLES)
def patient(patient_id: int):
    record = _patient_or_404(patient_id)
    overview = patient_overview.build_overview(
        db.session,
        now=g.now,
        patient=record,
        schedule=current_app.extensions["schedule"],
        registry=current_app.extensions["instruments"],
        language=_language(),
    )
    return render_template(
        "staff/patient.html",
        patient=record,
        overview=overview,
        **_helpers(record.site.time_zone),
    )


@bp.get("/assessments/<id:assessment_id>")
@staff_page(*access.PATIENT_VIEWER_ROLES)
def assessment(assessment_id: int):
    return assessment_page(access.assessment_for(db.session, g.user, assessment_id))


def assessment_page(
    record: Assessment, *, missing_form: MissingReasonForm | None = None, status: int = 200
) -> ResponseReturnValue:
    """One time point: its answers and scores, and for a missed one why it is missing."""
    detail = patient_overview.assessment_detail(
        db.session,
        now=g.now,
        assessment=record,
        schedule=current_app.extensions["schedule"],
        registry=current_app.extensions["instruments"],
        language=_language(),
    )
    return render_template(
        "staff/assessment.html",
        patient=record.patient,
        detail=detail,
        entry_url=(
            url_for("staff.enter_answers", assessment_id=record.id) if may_enter(record) else None
        ),
        MODE_LABELS={**MODE_LABELS, "electronic": _("On the patient's own link")},
        **missing_reason_context(record, missing_form),
        **_helpers(record.patient.site.time_zone),
    ), status


def _chart_texts(series: ScoreSeries, reference: str) -> charts.ChartTexts:
    notes = []
    if reference == "inclusion":
        notes.append(_("No surgery date: days are counted from inclusion."))
    if series.points and series.baseline is None:
        notes.append(_("No baseline score: worsening is not marked."))
    if not series.points:
        notes.append(_("No scores yet."))
    return charts.ChartTexts(
        title=_("%(name)s (%(scale)s)", name=series.name, scale=series.scale),
        x_label=_("Days from surgery") if reference == "surgery" else _("Days from inclusion"),
        y_label=_("Score 0-100, higher is better")
        if series.higher_is_better
        else _("Score 0-100, higher is worse"),
        scores=_("Score"),
        worsened=_("Worse by 10 points or more than baseline"),
        baseline=_("Baseline score"),
        reference=_("Surgery") if reference == "surgery" else _("Inclusion"),
        note=" ".join(notes) or None,
    )


@bp.get("/patients/<id:patient_id>/chart/<scale>.svg")
@staff_page(*access.PATIENT_VIEWER_ROLES)
def patient_chart(patient_id: int, scale: str):
    record = _patient_or_404(patient_id)
    if scale not in CHART_SCALES:
        abort(404)
    found = patient_overview.score_series(
        db.session,
        patient=record,
        schedule=current_app.extensions["schedule"],
        registry=current_app.extensions["instruments"],
        language=_language(),
        scales=[scale],
    )
    if not found:
        abort(404)  # the scale belongs to no loaded instrument
    series = found[0]
    reference, _date = patient_overview.reference_of(record)
    svg = charts.render_svg(
        series.points, baseline=series.baseline, texts=_chart_texts(series, reference)
    )
    response = Response(svg, mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "no-store"
    # The site-wide policy forbids inline styles, but matplotlib's SVG carries a <style> element
    # and style attributes. Shown through <img>, an SVG is an isolated image document: it runs
    # no script and loads nothing, and its own policy is this one. So allow inline styles here
    # only, and nothing else (no scripts, no fetches, no framing). The global after_request hook
    # only sets the policy when the response has none.
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
    )
    return response
