"""Entering a paper form or a telephone interview for a time point (nurses of the patient's
site): every item answered or marked as left blank; corrections of an earlier entry need a
reason. The rules are in :mod:`pro_service.answering.entry`."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, RadioField, SelectChoice, SelectField, TextAreaField
from wtforms.validators import InputRequired, Length

from ....answering.entry import (
    PAPER,
    TELEPHONE,
    EntryError,
    enter_answers,
    entry_rules,
    parse_item_values,
)
from ....answering.responses import instruments_of, stored_answers
from ....audit import Actor
from ....extensions import db
from ....models import Assessment, Role
from ....staff import access
from ...i18n import LANGUAGE_NAMES, request_language
from .. import bp
from ..auth import staff_page
from ..labels import TIMEPOINT_STATUS
from .reasons import may_record, show_refusal

MODE_LABELS = {PAPER: _l("Paper form"), TELEPHONE: _l("Telephone interview")}


class EntryForm(FlaskForm):  # type: ignore[misc]
    mode = RadioField(
        _l("How the patient answered"),
        choices=[SelectChoice(mode, label) for mode, label in MODE_LABELS.items()],
        validators=[InputRequired(message=_l("Choose paper form or telephone interview."))],
    )
    language = SelectField(_l("Language of the form or interview"), choices=[])
    answered_on = DateField(
        _l("Date the patient answered"),
        validators=[InputRequired(message=_l("Give the date the patient answered."))],
    )
    correction = TextAreaField(_l("Reason for the correction"), validators=[Length(max=1000)])


def _language() -> str:
    return request_language()


def _assessment_or_404(assessment_id: int) -> Assessment:
    assessment = access.assessment_for(db.session, g.user, assessment_id)
    if not may_record(assessment):
        abort(404)
    return assessment


def may_enter(assessment: Assessment) -> bool:
    """Whether the time point page offers the entry link (the page itself says why not)."""
    if not may_record(assessment):
        return False
    rules = entry_rules(assessment, now=g.now, schedule=current_app.extensions["schedule"])
    return rules.allowed


def _page(
    assessment: Assessment, form: EntryForm, values: dict[int, str], status: int = 200
) -> ResponseReturnValue:
    rules = entry_rules(assessment, now=g.now, schedule=current_app.extensions["schedule"])
    language = _language()
    instruments = instruments_of(assessment, current_app.extensions["instruments"])
    groups = []
    for instrument in instruments:
        items = []
        for number, item in instrument.items.items():
            items.append(
                {
                    "number": number,
                    "text": instrument.item_text(number, language),
                    "options": [
                        (str(code), instrument.label(number, code, language)) for code in item.codes
                    ],
                    "value": values.get(number, ""),
                    "errors": form.item_errors.get(number, []),
                }
            )
        groups.append({"name": instrument.name.get(language) or instrument.id, "items": items})
    refusal = None
    if not rules.allowed and rules.refusal:
        params = dict(rules.refusal_params or {})
        if "status" in params:  # a stored status, in the words nurses see
            params["status"] = str(TIMEPOINT_STATUS.get(str(params["status"]), params["status"]))
        refusal = _(rules.refusal, **params)
    return render_template(
        "staff/entry.html",
        patient=assessment.patient,
        assessment=assessment,
        form=form,
        groups=groups,
        rules=rules,
        refusal=refusal,
        timepoint_label=_timepoint_label(assessment, language),
    ), status


def _timepoint_label(assessment: Assessment, language: str) -> str:
    try:
        label = current_app.extensions["schedule"].timepoint(assessment.timepoint).label
    except KeyError:
        return assessment.timepoint
    return str(label.get(language, assessment.timepoint))


def _new_form(assessment: Assessment, data: dict[str, Any] | None = None) -> EntryForm:
    form = EntryForm(data=data)
    form.language.choices = [SelectChoice(code, name) for code, name in LANGUAGE_NAMES]
    form.item_errors = {}
    return form


@bp.get("/assessments/<id:assessment_id>/enter", endpoint="enter_answers")
@staff_page(Role.NURSE.value)
def enter_answers_page(assessment_id: int) -> ResponseReturnValue:
    assessment = _assessment_or_404(assessment_id)
    rules = entry_rules(assessment, now=g.now, schedule=current_app.extensions["schedule"])
    stored = stored_answers(db.session, assessment.id)
    values: dict[int, str] = {n: str(c) for n, c in stored.items()}
    if rules.correction:
        instruments = instruments_of(assessment, current_app.extensions["instruments"])
        for instrument in instruments:
            for number in instrument.items:
                values.setdefault(number, "blank")
    form = _new_form(
        assessment,
        {
            "mode": assessment.mode if rules.correction else None,
            "language": assessment.language or assessment.patient.language,
            "answered_on": (
                assessment.completed_at.astimezone(_zone(assessment)).date()
                if rules.correction and assessment.completed_at
                else rules.latest
            ),
        },
    )
    return _page(assessment, form, values)


def _zone(assessment: Assessment) -> ZoneInfo:
    return ZoneInfo(assessment.patient.site.time_zone)


@bp.post("/assessments/<id:assessment_id>/enter", endpoint="save_entered_answers")
@staff_page(Role.NURSE.value)
def save_entered_answers(assessment_id: int) -> ResponseReturnValue:
    assessment = _assessment_or_404(assessment_id)
    form = _new_form(assessment)
    registry = current_app.extensions["instruments"]
    instruments = instruments_of(assessment, registry)
    values = {
        n: (request.form.get(f"q{n}") or "").strip()[:20]
        for instrument in instruments
        for n in instrument.items
    }
    if form.validate_on_submit():
        try:
            answers = parse_item_values(instruments, request.form)
            enter_answers(
                db.session,
                now=g.now,
                actor=Actor.staff(g.user.id),
                assessment=assessment,
                schedule=current_app.extensions["schedule"],
                registry=registry,
                mode=form.mode.data or "",
                language=form.language.data or "",
                answered_on=form.answered_on.data,
                answers=answers,
                correction_reason=form.correction.data,
            )
        except EntryError as exc:
            message = _(exc.message, **exc.params)
            show_refusal(form, exc.field, message)  # an item's: above the form, and by the item
            if exc.field.startswith("q") and exc.field[1:].isdigit():
                form.item_errors[int(exc.field[1:])] = [message]
        else:
            db.session.commit()
            flash(_("The answers are saved and the time point is scored."), "info")
            return redirect(url_for("staff.assessment", assessment_id=assessment.id), 303)
    return _page(assessment, form, values, status=400)
