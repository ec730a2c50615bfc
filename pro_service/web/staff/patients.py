"""Patient management for research nurses: register, edit, surgery date, status, SMS actions.

Every action is for nurses of the patient's own site (``@staff_page("nurse")`` and
:func:`access.patient_for`); everybody else gets 404. Views are thin: a form, one service call,
one commit, a redirect. Service errors name the field and are shown next to it, translated;
nothing of a refused request is saved (the session is rolled back).
"""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    HiddenField,
    RadioField,
    SelectField,
    StringField,
    TelField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from ...audit import Actor
from ...extensions import db
from ...models import FOLLOWED_STATUSES, Assessment, Patient, PatientStatus, Role, Site
from ...patients import registry as patient_service
from ...patients.registry import PatientDataError
from ...patients.schedule_changes import (
    LEAVING_STATUSES,
    ScheduleChangeError,
    change_anchor_date,
    check_leaving,
    correct_status,
    end_participation,
    follow_up_outlook,
    params_in,
)
from ...patients.study_ids import example_study_id
from ...scheduling.assessments import (
    OPEN_STATES,
    anchor_dates,
    display_status,
    local_today,
    registration_outlook,
)
from ...staff import access
from ..i18n import LANGUAGE_NAMES, request_language
from ..numbers import whole_number
from . import bp
from .auth import staff_page, staff_url
from .labels import PATIENT_STATUS as PATIENT_STATUS_LABELS
from .labels import TIMEPOINT_STATUS as TIMEPOINT_STATUS_LABELS

NURSE = Role.NURSE.value

LEAVING_LABELS = {
    "withdrawn": _l("Withdrawn"),
    "deceased": _l("Deceased"),
    "not_operated": _l("Not operated"),
}
WITHDRAWAL_LABELS = {
    "questionnaires": _l("From the questionnaires only (stays in the study)"),
    "study": _l("From the whole study"),
}
REASON_HINT = _l("Recorded in the audit trail. Do not write health details or phone numbers.")


# --- helpers -----------------------------------------------------------------------------------


def _schedule() -> Any:
    return current_app.extensions["schedule"]


def _vault() -> Any:
    return current_app.extensions["vault"]


def _actor() -> Actor:
    return Actor.staff(g.user.id)


def _patient_or_404(patient_id: int) -> Patient:
    patient = access.patient_for(db.session, g.user, patient_id)
    if not may_manage(patient):
        abort(404)
    return patient


def _site_or_404(site_id: int) -> Site:
    return access.site_for(db.session, g.user, site_id)


def may_manage(patient: Patient) -> bool:
    """Whether the signed-in user may use the actions on this patient (own site's nurses)."""
    user = g.get("user")
    return user is not None and access.can_edit_patients(user) and patient.site_id in user.site_ids


def patient_page_url(patient: Patient) -> str:
    return (
        staff_url("staff.patient", patient_id=patient.id)
        or staff_url("staff.board")
        or url_for("staff.index")
    )


def error_text(exc: PatientDataError | ScheduleChangeError) -> str:
    """The service's message in the page's language."""
    params = params_in(exc.params, _page_language())
    if "status" in params:
        params["status"] = str(PATIENT_STATUS_LABELS.get(str(params["status"]), params["status"]))
    return _(exc.message, **params)


def _show_error(form: FlaskForm, exc: PatientDataError | ScheduleChangeError) -> None:
    db.session.rollback()  # nothing of a refused request is saved
    text = error_text(exc)
    target = getattr(form, exc.field, None)
    if target is not None and hasattr(target, "errors"):
        target.errors = [*target.errors, text]
    else:
        form.form_errors.append(text)


def _page_language() -> str:
    return request_language()


def _label(labels: dict[str, str], key: str) -> str:
    """A schedule file's label in the page's language (else English, else the key)."""
    return labels.get(_page_language()) or labels.get("en") or key


def timepoint_label(key: str) -> str:
    try:
        return _label(_schedule().timepoint(key).label, key)
    except KeyError:
        return key


def _flash_outlook(patient: Patient) -> None:
    """Tell the nurse at registration which time points open late and which are already lost
    (a patient registered after their window)."""
    outlook = registration_outlook(patient, _schedule(), g.now)
    if outlook.opened_late:
        flash(
            _(
                "Registered after its window: %(timepoints)s opens today instead, until "
                "%(closes)s, and the patient gets its SMS.",
                timepoints=", ".join(timepoint_label(a.timepoint) for a in outlook.opened_late),
                closes=min(a.window_closes for a in outlook.opened_late).isoformat(),
            ),
            "info",
        )
    if outlook.lost:
        flash(
            _(
                "Already past, these time points will not be sent: %(timepoints)s.",
                timepoints=", ".join(timepoint_label(a.timepoint) for a in outlook.lost),
            ),
            "warning",
        )


def _language_choices(blank: str | None = None) -> list[SelectChoice]:
    choices = [SelectChoice(code, name) for code, name in LANGUAGE_NAMES]
    return [SelectChoice("", blank), *choices] if blank else choices


@bp.context_processor
def _patient_action_globals() -> dict[str, Any]:
    return {
        "may_manage_patient": may_manage,
        "may_see_phone": lambda patient: access.can_see_phone(g.user, patient),
        "patient_open_assessments": patient_service.open_assessments,
        "timepoint_label": timepoint_label,
        "patient_status_label": lambda s: PATIENT_STATUS_LABELS.get(s, s),
        "patient_followed": lambda patient: patient.status in FOLLOWED_STATUSES,
        "patient_recorded_anchors": editable_anchors,
        "anchor_label": anchor_label,
    }


def anchor_label(key: str) -> str:
    """An anchor's name in the page's language (the schedule file's label)."""
    anchor = _schedule().anchors.get(key)
    return key if anchor is None else _label(anchor.label, key)


def editable_anchors(patient: Patient) -> list[Any]:
    """The schedule's own anchors (not inclusion or surgery) whose date a nurse may record or
    correct for this patient now: a follow-up track's while the patient has its status, any
    other while the patient is active."""
    schedule = _schedule()
    track_anchors = {track.anchor: track.status for track in schedule.tracks.values()}
    return [
        anchor
        for anchor in schedule.anchors.values()
        if anchor.recorded
        and track_anchors.get(anchor.key, PatientStatus.ACTIVE.value) == patient.status
    ]


# --- forms -------------------------------------------------------------------------------------

_required = DataRequired(message=_l("This field is required."))
# Dates: InputRequired, so that a value that is not a date says so (DataRequired would hide it).
_date_required = InputRequired(message=_l("This field is required."))


class RegisterPatientForm(FlaskForm):  # type: ignore[misc]
    site = SelectField(_l("Site"), coerce=int, validators=[_required])
    study_id = StringField(_l("Study ID"), validators=[_required, Length(max=64)])
    phone = TelField(_l("Mobile phone number"), validators=[_required, Length(max=40)])
    language = SelectField(_l("Language of the SMS and questionnaires"), validators=[Optional()])
    inclusion_date = DateField(_l("Inclusion date"), validators=[_date_required])
    surgery_date = DateField(_l("Surgery date (if known)"), validators=[Optional()])


class EditPatientForm(FlaskForm):  # type: ignore[misc]
    study_id = StringField(_l("Study ID"), validators=[_required, Length(max=64)])
    language = SelectField(_l("Language of the SMS and questionnaires"), validators=[_required])
    phone = TelField(_l("New mobile phone number"), validators=[Optional(), Length(max=40)])
    inclusion_date = DateField(_l("Inclusion date"), validators=[_date_required])
    reason = TextAreaField(_l("Reason for the change"), validators=[Length(max=1000)])


class SurgeryDateForm(FlaskForm):  # type: ignore[misc]
    surgery_date = DateField(_l("Surgery date"), validators=[Optional()])
    reason = TextAreaField(_l("Reason for the change"), validators=[Length(max=1000)])


class StatusForm(FlaskForm):  # type: ignore[misc]
    status = RadioField(_l("New status"), validators=[_required])
    status_date = DateField(
        _l("Date (of death, of the withdrawal, or of the decision not to operate)"),
        validators=[Optional()],
    )
    withdrawal_kind = RadioField(_l("Withdrawn from"), validators=[Optional()])
    reason = TextAreaField(_l("Reason"), validators=[Length(max=1000)])
    confirmed = HiddenField()


class ReasonForm(FlaskForm):  # type: ignore[misc]
    reason = TextAreaField(_l("Reason"), validators=[Length(max=1000)])


class ResendForm(FlaskForm):  # type: ignore[misc]
    assessment_id = HiddenField()


class CsrfOnlyForm(FlaskForm):  # type: ignore[misc]
    pass


# --- register ----------------------------------------------------------------------------------


@bp.route("/patients/new", methods=["GET", "POST"])
@staff_page(NURSE)
def register_patient() -> ResponseReturnValue:
    sites = access.visible_sites(db.session, g.user)
    form = RegisterPatientForm()
    form.site.choices = [SelectChoice(str(s.id), f"{s.code} – {s.name}") for s in sites]
    form.language.choices = _language_choices(blank=str(_l("The site's default language")))
    if request.method == "GET":
        raw_site = request.args.get("site")
        chosen = whole_number(raw_site)
        if raw_site is not None and chosen is None:
            abort(404)
        site = _site_or_404(chosen) if chosen is not None else None
        if site is None and len(sites) == 1:
            site = sites[0]
        if site is not None:
            form.site.data = site.id
            form.language.data = site.default_language
    else:
        posted = whole_number(request.form.get("site", ""))
        if posted is not None:
            _site_or_404(posted)  # another site's id: 404, nothing saved
    if form.validate_on_submit():
        site = _site_or_404(form.site.data)
        try:
            patient = patient_service.register_patient(
                db.session,
                now=g.now,
                actor=_actor(),
                vault=_vault(),
                schedule=_schedule(),
                site=site,
                study_id=form.study_id.data,
                phone=form.phone.data,
                language=form.language.data or site.default_language,
                inclusion_date=form.inclusion_date.data,
                surgery_date=form.surgery_date.data,
                check_date_limits=True,
            )
        except PatientDataError as exc:
            _show_error(form, exc)
        else:
            db.session.commit()
            flash(_("Patient %(study_id)s is registered.", study_id=patient.study_id), "info")
            _flash_outlook(patient)
            return redirect(patient_page_url(patient))
    return render_template(
        "staff/patients/register.html", form=form, sites=sites, study_id_hint=_study_id_hint(sites)
    )


def _study_id_hint(sites: list[Site]) -> str:
    """An example study ID of each site's format (never the format's regular expression)."""
    examples = [
        (site.code, example)
        for site in sites
        if (example := example_study_id(site.study_id_pattern)) is not None
    ]
    if not examples:
        return _("As on the inclusion form.")
    if len(examples) == 1:
        return _("As on the inclusion form, for example %(example)s.", example=examples[0][1])
    return _(
        "As on the inclusion form, for example %(examples)s.",
        examples=", ".join(f"{example} ({code})" for code, example in examples),
    )


# --- edit --------------------------------------------------------------------------------------


@bp.route("/patients/<id:patient_id>/edit", methods=["GET", "POST"])
@staff_page(NURSE)
def edit_patient(patient_id: int) -> ResponseReturnValue:
    patient = _patient_or_404(patient_id)
    form = EditPatientForm(
        data=None
        if request.method == "POST"
        else {
            "study_id": patient.study_id,
            "language": patient.language,
            "inclusion_date": patient.inclusion_date,
        }
    )
    form.language.choices = _language_choices()
    if form.validate_on_submit():
        try:
            update = patient_service.update_patient(
                db.session,
                now=g.now,
                actor=_actor(),
                vault=_vault(),
                schedule=_schedule(),
                patient=patient,
                study_id=form.study_id.data,
                language=form.language.data,
                phone=form.phone.data or None,
                inclusion_date=form.inclusion_date.data,
                reason=form.reason.data or "",
            )
        except PatientDataError as exc:
            _show_error(form, exc)
        else:
            if not update.changed:
                flash(_("Nothing was changed."), "info")
                return redirect(patient_page_url(patient))
            db.session.commit()
            flash(_("The patient's details are saved."), "info")
            if update.rescheduled is not None:
                flash(_rescheduled_summary(update.rescheduled.changed), "info")
            if "phone" in update.fields:
                flash(_("The phone number is saved and no longer marked as not working."), "info")
            if update.invitations_requeued:
                flash(
                    ngettext(
                        "%(num)d questionnaire link will be sent again to the new number.",
                        "%(num)d questionnaire links will be sent again to the new number.",
                        update.invitations_requeued,
                    ),
                    "info",
                )
            return redirect(patient_page_url(patient))
    return render_template(
        "staff/patients/edit.html", form=form, patient=patient, reason_hint=REASON_HINT
    )


def _rescheduled_summary(changed: list[Assessment]) -> str:
    cancelled = sum(1 for a in changed if a.status == "cancelled")
    moved = len(changed) - cancelled
    if not changed:
        return _("No time point had to change.")
    parts = []
    if moved:
        parts.append(
            ngettext(
                "%(num)d time point was rescheduled.",
                "%(num)d time points were rescheduled.",
                moved,
            )
        )
    if cancelled:
        parts.append(
            ngettext(
                "%(num)d time point was cancelled.",
                "%(num)d time points were cancelled.",
                cancelled,
            )
        )
    return " ".join(parts)


# --- surgery date ------------------------------------------------------------------------------


def _timepoint_rows(patient: Patient, anchor: str) -> list[dict[str, Any]]:
    today = local_today(patient.site, g.now)
    return [
        {
            "label": timepoint_label(a.timepoint),
            "due_date": a.due_date,
            "status": TIMEPOINT_STATUS_LABELS.get(display_status(a, today), a.status),
            "fixed": a.status not in ("scheduled", "open", "expired", "cancelled")
            or a.started_at is not None,
        }
        for a in patient.assessments
        if a.anchor == anchor
    ]


@bp.route(
    "/patients/<id:patient_id>/surgery", methods=["GET", "POST"], endpoint="change_surgery_date"
)
@staff_page(NURSE)
def change_surgery_date_view(patient_id: int) -> ResponseReturnValue:
    patient = _patient_or_404(patient_id)
    form = SurgeryDateForm(
        data=None if request.method == "POST" else {"surgery_date": patient.surgery_date}
    )
    if form.validate_on_submit():
        saved = _save_anchor_date(
            form,
            patient,
            anchor="surgery",
            new_date=form.surgery_date.data,
            field="surgery_date",
            saved_text=_("The surgery date is saved.")
            if form.surgery_date.data
            else _("The surgery date is removed."),
        )
        if saved is not None:
            return saved
    return render_template(
        "staff/patients/surgery.html",
        form=form,
        patient=patient,
        rows=_timepoint_rows(patient, "surgery"),
        reason_hint=REASON_HINT,
    )


def _save_anchor_date(  # noqa: PLR0913
    form: FlaskForm,
    patient: Patient,
    *,
    anchor: str,
    new_date: Any,
    field: str,
    saved_text: str,
) -> ResponseReturnValue | None:
    """Save a posted anchor date (surgery, or one of the schedule's own) and go back to the
    patient with what changed; None when it is refused (the error is on ``form``)."""
    if new_date == anchor_dates(patient).get(anchor):
        flash(_("Nothing was changed."), "info")
        return redirect(patient_page_url(patient))
    try:
        changed = change_anchor_date(
            db.session,
            now=g.now,
            actor=_actor(),
            schedule=_schedule(),
            vault=_vault(),
            patient=patient,
            anchor=anchor,
            new_date=new_date,
            reason=form.reason.data or "",
            field=field,
        )
    except ScheduleChangeError as exc:
        _show_error(form, exc)
        return None
    db.session.commit()
    flash(saved_text, "info")
    flash(_rescheduled_summary(changed), "info")
    return redirect(patient_page_url(patient))


# --- status ------------------------------------------------------------------------------------


@bp.route("/patients/<id:patient_id>/status", methods=["GET", "POST"])
@staff_page(NURSE)
def change_status(patient_id: int) -> ResponseReturnValue:
    patient = _patient_or_404(patient_id)
    form = StatusForm()
    form.status.choices = [SelectChoice(s, str(LEAVING_LABELS[s])) for s in LEAVING_STATUSES]
    form.withdrawal_kind.choices = [SelectChoice(k, str(v)) for k, v in WITHDRAWAL_LABELS.items()]
    if patient.status != PatientStatus.ACTIVE.value:
        return _ended_page(patient, ReasonForm())
    to_cancel = [
        timepoint_label(a.timepoint)
        for a in patient.assessments
        if a.status in ("scheduled", *OPEN_STATES) and a.started_at is None
    ]
    if form.validate_on_submit():
        try:
            check_leaving(
                _schedule(),
                patient,
                form.status.data,
                form.status_date.data,
                form.withdrawal_kind.data,
                now=g.now,
            )
        except ScheduleChangeError as exc:
            _show_error(form, exc)
        else:
            if not (form.reason.data or "").strip():
                form.reason.errors = [
                    *form.reason.errors,
                    _("A reason is required for every change to study data."),
                ]
            elif form.confirmed.data != "yes":
                return _confirm_status(form, patient, to_cancel)
            else:
                return _end_participation(form, patient)
    form.confirmed.data = ""
    return render_template(
        "staff/patients/status.html",
        form=form,
        patient=patient,
        confirming=False,
        to_cancel=to_cancel,
        reason_hint=REASON_HINT,
    )


def _confirm_status(form: StatusForm, patient: Patient, to_cancel: list[str]) -> str:
    """The confirmation step: what the status cancels and, for a status with a follow-up track
    (not operated), the time points that follow."""
    form.confirmed.data = "yes"
    follow_up = [
        {"label": timepoint_label(tp.key), "opens": w.opens, "closes": w.closes}
        for tp, w in follow_up_outlook(_schedule(), form.status.data, form.status_date.data)
    ]
    return render_template(
        "staff/patients/status.html",
        form=form,
        patient=patient,
        confirming=True,
        to_cancel=to_cancel,
        follow_up=follow_up,
        new_status=LEAVING_LABELS[form.status.data],
        withdrawal_kind=WITHDRAWAL_LABELS.get(form.withdrawal_kind.data or ""),
    )


def _end_participation(form: StatusForm, patient: Patient) -> ResponseReturnValue:
    try:
        cancelled = end_participation(
            db.session,
            now=g.now,
            actor=_actor(),
            schedule=_schedule(),
            vault=_vault(),
            patient=patient,
            status=form.status.data,
            status_date=form.status_date.data,
            withdrawal_kind=form.withdrawal_kind.data,
            reason=form.reason.data or "",
            registry=current_app.extensions["instruments"],
        )
    except ScheduleChangeError as exc:
        _show_error(form, exc)
        form.confirmed.data = ""
        return render_template(
            "staff/patients/status.html",
            form=form,
            patient=patient,
            confirming=False,
            to_cancel=[],
            reason_hint=REASON_HINT,
        )
    return _status_changed(patient, cancelled)


@bp.post("/patients/<id:patient_id>/status/correct", endpoint="correct_status")
@staff_page(NURSE)
def correct_status_view(patient_id: int) -> ResponseReturnValue:
    """A leaving status (or follow-up complete) recorded by mistake: active again, with a
    reason; the schedule is rebuilt."""
    patient = _patient_or_404(patient_id)
    form = ReasonForm()
    if form.validate_on_submit():
        try:
            rebuilt = correct_status(
                db.session,
                now=g.now,
                actor=_actor(),
                schedule=_schedule(),
                vault=_vault(),
                patient=patient,
                reason=form.reason.data or "",
            )
        except ScheduleChangeError as exc:
            _show_error(form, exc)
        else:
            return _status_changed(patient, rebuilt)
    return _ended_page(patient, form), 400


def _status_changed(patient: Patient, changed: list[Assessment]) -> ResponseReturnValue:
    """Commit a status change, say what it did to the time points, back to the patient."""
    db.session.commit()
    flash(
        _(
            "The patient's status is now: %(status)s.",
            status=str(PATIENT_STATUS_LABELS[patient.status]),
        ),
        "info",
    )
    flash(_rescheduled_summary(changed), "info")
    return redirect(patient_page_url(patient))


def _ended_page(patient: Patient, correction: ReasonForm) -> str:
    """The status page of a patient whose participation ended (or who is followed up on a
    track, such as "not operated"): what was recorded, and the correction form."""
    track_anchor = _schedule().track_anchor(patient.status)
    return render_template(
        "staff/patients/status.html",
        form=None,
        correction=correction,
        patient=patient,
        current_status=PATIENT_STATUS_LABELS.get(patient.status, patient.status),
        withdrawal_kind=WITHDRAWAL_LABELS.get(patient.withdrawal_kind or ""),
        track_anchor=None if track_anchor is None else track_anchor.key,
    )


# --- SMS actions -------------------------------------------------------------------------------


def _posted_assessment(patient: Patient, *, required: bool) -> Assessment | None:
    """The time point a patient's action form names (CSRF checked): 400 for a form that does
    not validate, 404 for an id that is not a time point of this patient."""
    form = ResendForm()
    if not form.validate_on_submit():
        abort(400)
    if not form.assessment_id.data and not required:
        return None
    assessment_id = whole_number(form.assessment_id.data or "")
    if assessment_id is None:
        abort(404)
    assessment = access.assessment_for(db.session, g.user, assessment_id)
    if assessment.patient_id != patient.id:
        abort(404)
    return assessment


@bp.post("/patients/<id:patient_id>/resend")
@staff_page(NURSE)
def resend_link(patient_id: int) -> ResponseReturnValue:
    patient = _patient_or_404(patient_id)
    assessment = _posted_assessment(patient, required=False)
    try:
        patient_service.resend_link(
            db.session, now=g.now, actor=_actor(), patient=patient, assessment=assessment
        )
    except PatientDataError as exc:
        db.session.rollback()
        flash(error_text(exc), "error")
    else:
        db.session.commit()
        flash(_("The questionnaire link will be sent again (within the sending hours)."), "info")
    return redirect(patient_page_url(patient))


@bp.post("/patients/<id:patient_id>/opt-in")
@staff_page(NURSE)
def opt_in(patient_id: int) -> ResponseReturnValue:
    patient = _patient_or_404(patient_id)
    form = ReasonForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        announced = patient_service.opt_back_in(
            db.session, now=g.now, actor=_actor(), patient=patient, reason=form.reason.data or ""
        )
    except PatientDataError as exc:
        db.session.rollback()
        flash(error_text(exc), "error")
    else:
        db.session.commit()
        flash(_("The patient will receive SMS again."), "info")
        if announced:
            flash(
                ngettext(
                    "%(num)d invitation to an open questionnaire will be sent.",
                    "Invitations to %(num)d open questionnaires will be sent.",
                    announced,
                ),
                "info",
            )
    return redirect(patient_page_url(patient))


@bp.post("/patients/<id:patient_id>/phone")
@staff_page(NURSE)
def show_phone(patient_id: int) -> ResponseReturnValue:
    patient = _patient_or_404(patient_id)
    if not access.can_see_phone(g.user, patient):
        abort(404)
    if not CsrfOnlyForm().validate_on_submit():
        abort(400)
    number = None if patient.phone_encrypted is None else _vault().decrypt(patient.phone_encrypted)
    patient_service.record_phone_viewed(db.session, now=g.now, actor=_actor(), patient=patient)
    db.session.commit()
    # Rendered, never flashed or put in a URL: the flash lives in the session cookie.
    return render_template(
        "staff/patients/phone.html",
        patient=patient,
        number=number,
        display=_pretty(number),
        back_url=patient_page_url(patient),
    )


@bp.post("/patients/<id:patient_id>/link")
@staff_page(NURSE)
def show_link(patient_id: int) -> ResponseReturnValue:
    """The current questionnaire link, for a nurse to give the patient another way."""
    patient = _patient_or_404(patient_id)
    if not access.can_see_phone(g.user, patient):  # the same nurses who may call the patient
        abort(404)
    assessment = _posted_assessment(patient, required=True)
    assert assessment is not None
    try:
        url = patient_service.reveal_link(
            db.session,
            now=g.now,
            actor=_actor(),
            vault=_vault(),
            base_url=current_app.config["PRO_SETTINGS"].public_base_url,
            patient=patient,
            assessment=assessment,
        )
    except PatientDataError as exc:
        db.session.rollback()
        flash(error_text(exc), "error")
        return redirect(patient_page_url(patient))
    db.session.commit()
    # Rendered, never flashed or put in a URL: the flash lives in the session cookie.
    return render_template(
        "staff/patients/link.html",
        patient=patient,
        timepoint=timepoint_label(assessment.timepoint),
        closes=assessment.window_closes,
        url=url,
        back_url=patient_page_url(patient),
    )


def _pretty(e164: str | None) -> str | None:
    if e164 is None:
        return None
    import phonenumbers

    return phonenumbers.format_number(
        phonenumbers.parse(e164), phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
