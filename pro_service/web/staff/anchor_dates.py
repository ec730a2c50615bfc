"""Dates of the schedule's own anchors (a decision not to operate, a start of chemotherapy): a
nurse records and corrects them on the patient page, each change with a reason, audited; the
time points counted from the date follow it. The surgery date has its own page (patients.py);
the inclusion date is on the edit page."""

from __future__ import annotations

from flask import abort, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, TextAreaField
from wtforms.validators import Length, Optional

from ...models import Role
from ...scheduling.assessments import anchor_dates
from . import bp
from .auth import staff_page
from .patients import (
    REASON_HINT,
    _patient_or_404,
    _save_anchor_date,
    _schedule,
    _timepoint_rows,
    anchor_label,
    editable_anchors,
)


class AnchorDateForm(FlaskForm):  # type: ignore[misc]
    day = DateField(_l("Date"), validators=[Optional()])
    reason = TextAreaField(_l("Reason for the change"), validators=[Length(max=1000)])


@bp.route(
    "/patients/<id:patient_id>/dates/<anchor>",
    methods=["GET", "POST"],
    endpoint="change_anchor_date",
)
@staff_page(Role.NURSE.value)
def change_anchor_date_view(patient_id: int, anchor: str) -> ResponseReturnValue:
    patient = _patient_or_404(patient_id)
    if anchor == "surgery":
        return redirect(url_for("staff.change_surgery_date", patient_id=patient.id))
    if _schedule().anchors.get(anchor) is None or anchor == "inclusion":
        abort(404)
    current = anchor_dates(patient).get(anchor)
    editable = any(a.key == anchor for a in editable_anchors(patient))
    form = AnchorDateForm(data=None if request.method == "POST" else {"day": current})
    if editable and form.validate_on_submit():
        saved = _save_anchor_date(
            form,
            patient,
            anchor=anchor,
            new_date=form.day.data,
            field="day",
            saved_text=_("The date is saved: %(event)s.", event=anchor_label(anchor)),
        )
        if saved is not None:
            return saved
    elif request.method == "POST" and not editable:
        abort(400)
    return render_template(
        "staff/patients/anchor_date.html",
        form=form,
        patient=patient,
        anchor=anchor,
        event=anchor_label(anchor),
        current=current,
        editable=editable,
        rows=_timepoint_rows(patient, anchor),
        reason_hint=REASON_HINT,
    )
