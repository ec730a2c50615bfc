"""Why a missed time point has no answers: the reason on the time point's page, recorded by the
nurses of the patient's site (audited; a change needs a reason for the correction)."""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, g, redirect, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import RadioField, TextAreaField
from wtforms.validators import Length

from ....answering.missing import (
    MISSED,
    TEXT_LIMIT,
    MissingReasonError,
    MissingReasons,
    proposed_reason,
    record_missing_reason,
)
from ....audit import Actor
from ....extensions import db
from ....models import Assessment, Role
from ....staff import access
from ...i18n import request_language
from .. import bp
from ..auth import staff_page


class MissingReasonForm(FlaskForm):  # type: ignore[misc]
    reason = RadioField(_l("Reason"), choices=[], validate_choice=False)
    text = TextAreaField(_l("What happened"), validators=[Length(max=TEXT_LIMIT)])
    correction = TextAreaField(_l("Reason for the correction"), validators=[Length(max=1000)])


def _reasons() -> MissingReasons:
    reasons: MissingReasons = current_app.extensions["missing_reasons"]
    return reasons


def show_refusal(form: FlaskForm, field_name: str, message: str) -> None:
    """A service's refusal: nothing of the request is saved, the message goes next to the field
    it names (or above the form)."""
    db.session.rollback()
    field = getattr(form, field_name, None)
    if field is not None and hasattr(field, "errors"):
        field.errors = [*field.errors, message]
    else:
        form.form_errors.append(message)


def may_record(assessment: Assessment) -> bool:
    """The nurses of the patient's own site record why a time point is missing."""
    user = g.get("user")
    return (
        user is not None
        and access.can_edit_patients(user)
        and assessment.patient.site_id in user.site_ids
    )


def missing_reason_context(
    assessment: Assessment, form: MissingReasonForm | None = None
) -> dict[str, Any]:
    """What the time point page shows of its missing reason, and the form when it may change."""
    if assessment.status != MISSED:
        return {"missing": None}
    language = request_language()
    reasons = _reasons()
    current = reasons.get(assessment.missing_reason) if assessment.missing_reason else None
    proposed_code = None if current else proposed_reason(db.session, assessment)
    proposed = reasons.get(proposed_code) if proposed_code else None
    if form is None and may_record(assessment):
        form = MissingReasonForm(
            data={
                "reason": assessment.missing_reason or proposed_code,
                "text": assessment.missing_reason_text or "",
            }
        )
    if form is not None:
        form.reason.choices = [(r.code, r.label(language)) for r in reasons.reasons]
    return {
        "missing": {
            "current": None if current is None else current.label(language),
            "text": assessment.missing_reason_text,
            "proposed": None if proposed is None else proposed.label(language),
            "needs_text": [r.code for r in reasons.reasons if r.needs_text],
            "form": form,
            "action": url_for("staff.record_missing_reason", assessment_id=assessment.id),
        }
    }


@bp.post("/assessments/<id:assessment_id>/missing-reason", endpoint="record_missing_reason")
@staff_page(Role.NURSE.value)
def record_missing_reason_view(assessment_id: int) -> ResponseReturnValue:
    assessment = access.assessment_for(db.session, g.user, assessment_id)
    if not may_record(assessment):
        abort(404)
    form = MissingReasonForm()
    form.reason.choices = [(r.code, r.code) for r in _reasons().reasons]
    if form.validate_on_submit():
        try:
            record_missing_reason(
                db.session,
                now=g.now,
                actor=Actor.staff(g.user.id),
                reasons=_reasons(),
                assessment=assessment,
                code=form.reason.data or "",
                text=form.text.data,
                correction_reason=form.correction.data,
            )
        except MissingReasonError as exc:
            show_refusal(form, exc.field, _(exc.message, **exc.params))
        else:
            db.session.commit()
            flash(_("The reason is recorded."), "info")
            return redirect(url_for("staff.assessment", assessment_id=assessment.id), 303)
    from ..patient_page import assessment_page

    return assessment_page(assessment, missing_form=form, status=400)
