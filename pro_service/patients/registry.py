"""Registering and editing patients. The phone number is validated, encrypted and never logged.

Errors name the form field at fault and carry an English message with ``%(name)s`` placeholders,
marked for translation with ``N_`` (the staff pages translate it; the CLI prints it as it is).

Date rules (issue: "dates decades away"):
- the staff form and the import command refuse inclusion dates more than a year before or more
  than 30 days after the site's today (``check_date_limits=True``; the demo and tests that build
  history call :func:`register_patient` without it);
- the surgery date lies between the inclusion date and the schedule's limit after it (ScanPan:
  1,095 days), always; so does every anchor the schedule counts from inclusion.
Phone numbers: any country's valid mobile number is accepted (a Finnish patient at a Swedish
centre, a patient with a foreign subscription); invalid numbers and landlines are refused. A
number without a country code is read as one of the site's country.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..audit import Actor, record
from ..crypto import Vault
from ..instruments.csv_dialect import looks_like_formula
from ..messaging.outbox import (
    LINK_KINDS,
    ResendRefused,
    announce_again_after_opt_in,
    queue_resend,
)
from ..messaging.texts import patient_link
from ..models import (
    FOLLOWED_STATUSES,
    Assessment,
    MessageStatus,
    OutboxMessage,
    Patient,
    PatientStatus,
    Site,
)
from ..scheduling.assessments import (
    OPEN_STATES,
    anchor_dates,
    create_assessments,
    current_token,
    local_today,
)
from ..scheduling.schedule import Schedule
from .phones import InvalidPhoneNumber, normalise_phone
from .schedule_changes import (
    N_,
    Rescheduled,
    ScheduleChangeError,
    check_anchor_date,
    params_in,
    recompute_timepoints,
    require_reason,
)
from .study_ids import example_study_id

LANGUAGES = ("sv", "fi", "en")
MAX_INCLUSION_AGE = timedelta(days=365)
MAX_INCLUSION_AHEAD = timedelta(days=30)
#: Resends of one time point's link allowed in RESEND_PERIOD (a lost SMS, not a reminder tool).
RESEND_LIMIT = 3
RESEND_PERIOD = timedelta(hours=24)
FAILED_STATUSES = (MessageStatus.FAILED.value, MessageStatus.UNDELIVERED.value)

__all__ = [
    "MAX_INCLUSION_AGE",
    "MAX_INCLUSION_AHEAD",
    "PatientDataError",
    "PatientUpdate",
    "check_inclusion_date",
    "opt_back_in",
    "register_patient",
    "resend_link",
    "update_patient",
]


class PatientDataError(ValueError):
    """Invalid patient data; ``field`` names the form field at fault.

    ``message`` is an English msgid with ``%(name)s`` placeholders filled from ``params``.
    """

    def __init__(self, field: str, message: str, **params: object) -> None:
        self.field = field
        self.message = message
        self.params = params  # a value may be a label in every language (ScheduleChangeError)
        super().__init__(f"{field}: {self.english}")

    @property
    def english(self) -> str:
        """The message in English (the import command's and the CLI's language)."""
        return self.message % params_in(self.params, "en") if self.params else self.message

    @classmethod
    def from_schedule_error(cls, exc: ScheduleChangeError) -> PatientDataError:
        return cls(exc.field, exc.message, **exc.params)


# --- checks shared by the form, the import and the edit page ---------------------------------


def check_study_id(
    session: Session, site: Site, study_id: str, *, patient_id: int | None = None
) -> str:
    """The study ID, stripped; it must have the site's format and be unused."""
    study_id = study_id.strip()
    if not study_id:
        raise PatientDataError("study_id", N_("A study ID is required."))
    if looks_like_formula(study_id):
        raise PatientDataError(
            "study_id",
            N_(
                "%(study_id)s cannot be a study ID: it starts with a character that spreadsheets "
                "read as the start of a formula (= + - @)."
            ),
            study_id=study_id,
        )
    if site.study_id_pattern and not re.fullmatch(site.study_id_pattern, study_id):
        example = example_study_id(site.study_id_pattern)
        if example is None:
            raise PatientDataError(
                "study_id",
                N_(
                    "%(study_id)s does not have this site's study ID format. The administrator "
                    "can tell you the format."
                ),
                study_id=study_id,
            )
        raise PatientDataError(
            "study_id",
            N_("%(study_id)s does not have this site's study ID format, for example %(example)s."),
            study_id=study_id,
            example=example,
        )
    query = select(Patient.id).where(Patient.study_id == study_id)
    if patient_id is not None:
        query = query.where(Patient.id != patient_id)
    if session.scalar(query) is not None:
        raise PatientDataError(
            "study_id",
            N_("A patient with study ID %(study_id)s already exists."),
            study_id=study_id,
        )
    return study_id


def check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise PatientDataError(
            "language", N_("The language must be sv, fi or en, not %(value)s."), value=language
        )
    return language


def check_phone(raw: str, site: Site) -> str:
    """The E.164 form of a mobile number; ``site.country`` is the default region."""
    if not raw.strip():
        raise PatientDataError("phone", N_("A mobile phone number is required."))
    try:
        return normalise_phone(raw, site.country)
    except InvalidPhoneNumber as exc:
        raise PatientDataError(
            "phone",
            N_(
                "This is not a valid mobile phone number. Numbers from abroad need their "
                "country code, e.g. +358."
            ),
        ) from exc


def check_inclusion_date(site: Site, now: datetime, inclusion_date: date) -> None:
    """Within a year back and 30 days ahead of the site's today."""
    today = local_today(site, now)
    if inclusion_date < today - MAX_INCLUSION_AGE:
        raise PatientDataError("inclusion_date", N_("The inclusion date is more than a year ago."))
    if inclusion_date > today + MAX_INCLUSION_AHEAD:
        raise PatientDataError(
            "inclusion_date", N_("The inclusion date is more than 30 days ahead.")
        )


def _check_dates(
    schedule: Schedule,
    dates: dict[str, date | None],
    anchor: str,
    *,
    today: date,
) -> None:
    """The schedule's rules between anchor dates (surgery not before inclusion ...), for a new
    or changed ``anchor`` date in ``dates``."""
    try:
        check_anchor_date(schedule, dates, anchor, today=today, field=f"{anchor}_date")
    except ScheduleChangeError as exc:
        raise PatientDataError.from_schedule_error(exc) from exc


# --- registration ------------------------------------------------------------------------------


def register_patient(
    session: Session,
    *,
    now: datetime,
    actor: Actor,
    vault: Vault,
    schedule: Schedule,
    site: Site,
    study_id: str,
    phone: str | None,
    language: str,
    inclusion_date: date,
    surgery_date: date | None = None,
    check_date_limits: bool = False,
) -> Patient:
    """Register a patient and create the time points whose anchor date is known.

    Every check runs before anything is added to the session, so a refused patient leaves
    nothing behind. ``check_date_limits``: see the module docstring.
    """
    study_id = check_study_id(session, site, study_id)
    check_language(language)
    if check_date_limits:
        check_inclusion_date(site, now, inclusion_date)
    if surgery_date is not None:
        _check_dates(
            schedule,
            {"inclusion": inclusion_date, "surgery": surgery_date},
            "surgery",
            today=local_today(site, now),
        )

    phone_encrypted = phone_lookup = None
    phone_invalid = True
    if phone:
        e164 = check_phone(phone, site)
        phone_encrypted = vault.encrypt(e164)
        phone_lookup = vault.phone_lookup(e164)
        phone_invalid = False

    patient = Patient(
        study_id=study_id,
        site=site,
        language=language,
        phone_encrypted=phone_encrypted,
        phone_lookup=phone_lookup,
        phone_invalid=phone_invalid,
        inclusion_date=inclusion_date,
        surgery_date=surgery_date,
        status=PatientStatus.ACTIVE.value,
        opted_out=False,
        created_at=now,
        updated_at=now,
    )
    session.add(patient)
    session.flush()
    create_assessments(session, now=now, patient=patient, schedule=schedule)
    record(
        session,
        now=now,
        actor=actor,
        action="patient.registered",
        object_type="patient",
        object_id=patient.id,
        site_id=site.id,
        after={
            "study_id": study_id,
            "language": language,
            "inclusion_date": inclusion_date,
            "surgery_date": surgery_date,
            "has_phone": phone_encrypted is not None,
        },
    )
    return patient


# --- editing -----------------------------------------------------------------------------------


@dataclass
class PatientUpdate:
    """What :func:`update_patient` changed."""

    fields: list[str] = field(default_factory=list)  # study_id, language, inclusion_date, phone
    rescheduled: Rescheduled | None = None
    invitations_requeued: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.fields)


def update_patient(
    session: Session,
    *,
    now: datetime,
    actor: Actor,
    vault: Vault,
    schedule: Schedule,
    patient: Patient,
    study_id: str | None = None,
    language: str | None = None,
    phone: str | None = None,
    inclusion_date: date | None = None,
    reason: str = "",
) -> PatientUpdate:
    """Change a patient's study ID, language, phone number or inclusion date (None: unchanged).

    A reason is required when study data (the study ID or the inclusion date) change; it is
    recorded with any other change too. A new inclusion date recomputes the inclusion-anchored
    time points exactly as a surgery date change does. A new (or re-confirmed) phone number
    clears the bad-number flag and announces open time points again whose last SMS failed.
    One audit event holds before/after of every changed field, never the number itself.
    """
    update = PatientUpdate()
    before: dict[str, object] = {}
    after: dict[str, object] = {}

    # 1. Check everything, change nothing.
    new_study_id = None
    if study_id is not None and study_id.strip() != patient.study_id:
        new_study_id = check_study_id(session, patient.site, study_id, patient_id=patient.id)
    new_language = None
    if language is not None and language != patient.language:
        new_language = check_language(language)
    new_inclusion = None
    if inclusion_date is not None and inclusion_date != patient.inclusion_date:
        if patient.status != PatientStatus.ACTIVE.value:
            raise PatientDataError(
                "inclusion_date",
                N_("The patient is no longer active in the study (%(status)s)."),
                status=patient.status,
            )
        check_inclusion_date(patient.site, now, inclusion_date)
        _check_dates(
            schedule,
            {**anchor_dates(patient), "inclusion": inclusion_date},
            "inclusion",
            today=local_today(patient.site, now),
        )
        new_inclusion = inclusion_date
    new_phone = None
    phone_confirmed = False
    if phone is not None and phone.strip():
        e164 = check_phone(phone, patient.site)
        current = (
            None if patient.phone_encrypted is None else vault.decrypt(patient.phone_encrypted)
        )
        if e164 != current:
            new_phone = e164
        elif patient.phone_invalid:
            phone_confirmed = True  # the nurse checked the flagged number with the patient
    reason_text = reason.strip()
    if new_study_id is not None or new_inclusion is not None:
        try:
            reason_text = require_reason(reason)
        except ScheduleChangeError as exc:
            raise PatientDataError.from_schedule_error(exc) from exc

    # 2. Apply.
    if new_study_id is not None:
        before["study_id"], after["study_id"] = patient.study_id, new_study_id
        patient.study_id = new_study_id
        update.fields.append("study_id")
    if new_language is not None:
        before["language"], after["language"] = patient.language, new_language
        patient.language = new_language
        update.fields.append("language")
    if new_phone is not None or phone_confirmed:
        if new_phone is not None:
            patient.phone_encrypted = vault.encrypt(new_phone)
            patient.phone_lookup = vault.phone_lookup(new_phone)
            after["phone_changed"] = True
        else:
            after["phone_confirmed"] = True
        if patient.phone_invalid:
            before["phone_invalid"], after["phone_invalid"] = True, False
            patient.phone_invalid = False
        update.fields.append("phone")
        update.invitations_requeued = requeue_failed_invitations(session, now=now, patient=patient)
        if update.invitations_requeued:
            after["invitations_requeued"] = update.invitations_requeued
    if new_inclusion is not None:
        before["inclusion_date"], after["inclusion_date"] = patient.inclusion_date, new_inclusion
        patient.inclusion_date = new_inclusion
        update.fields.append("inclusion_date")
        update.rescheduled = recompute_timepoints(
            session,
            now=now,
            schedule=schedule,
            vault=vault,
            patient=patient,
            anchor="inclusion",
            why="inclusion date changed",
        )
        before.update(update.rescheduled.before)
        after.update(update.rescheduled.after)
    if not update.changed:
        return update
    patient.updated_at = now
    session.flush()
    record(
        session,
        now=now,
        actor=actor,
        action="patient.updated",
        object_type="patient",
        object_id=patient.id,
        site_id=patient.site_id,
        before=before,
        after=after,
        reason=reason_text or None,
    )
    return update


def _last_link_message(session: Session, assessment: Assessment) -> OutboxMessage | None:
    since = assessment.opened_at or assessment.created_at
    return session.scalar(
        select(OutboxMessage)
        .where(
            OutboxMessage.assessment_id == assessment.id,
            OutboxMessage.kind.in_(LINK_KINDS),
            OutboxMessage.created_at >= since,
        )
        .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
        .limit(1)
    )


def requeue_failed_invitations(session: Session, *, now: datetime, patient: Patient) -> int:
    """Open time points whose last SMS with the current link failed get a new invitation.

    The scheduler's next pass queues it (``invitation_queued_at`` cleared), to the new number:
    dispatch reads the number when it sends. Pending messages need nothing: they go to the new
    number anyway.
    """
    count = 0
    for assessment in patient.assessments:
        if assessment.status not in OPEN_STATES or assessment.invitation_queued_at is None:
            continue
        last = _last_link_message(session, assessment)
        if last is not None and last.status in FAILED_STATUSES:
            assessment.invitation_queued_at = None
            assessment.next_reminder_on = None
            assessment.updated_at = now
            count += 1
    return count


# --- SMS actions -------------------------------------------------------------------------------


def open_assessments(patient: Patient) -> list[Assessment]:
    """Time points with a link the patient can use now, the one closing first first."""
    return sorted(
        (a for a in patient.assessments if a.status in OPEN_STATES),
        key=lambda a: (a.window_closes, a.id),
    )


def resend_link(
    session: Session,
    *,
    now: datetime,
    actor: Actor,
    patient: Patient,
    assessment: Assessment | None = None,
) -> OutboxMessage:
    """Send the current link again (``assessment``, else the open time point closing first).

    Refused (``PatientDataError`` on field ``resend``) when there is no open link, the patient
    opted out or left the study, the number is marked as not working, a message with the link
    (invitation, reminder or resend) is still waiting to go out, or RESEND_LIMIT resends of
    this time point were queued in the last RESEND_PERIOD.
    """
    if assessment is None:
        candidates = open_assessments(patient)
        assessment = candidates[0] if candidates else None
    if assessment is None or assessment.status not in OPEN_STATES:
        raise PatientDataError("resend", N_("The patient has no open questionnaire link."))
    if patient.status not in FOLLOWED_STATUSES:
        raise PatientDataError(
            "resend",
            N_("The patient is no longer active in the study (%(status)s)."),
            status=patient.status,
        )
    if patient.opted_out:
        raise PatientDataError(
            "resend", N_("The patient has opted out of SMS; opt them back in first.")
        )
    if patient.phone_invalid:
        raise PatientDataError(
            "resend",
            N_(
                "The phone number is marked as not working, so the link cannot be sent to it. "
                "Correct the number first (Edit details), or show the link and give it to the "
                "patient another way."
            ),
        )
    waiting = session.scalar(
        select(OutboxMessage.kind).where(
            OutboxMessage.assessment_id == assessment.id,
            OutboxMessage.kind.in_(LINK_KINDS),
            OutboxMessage.status == MessageStatus.PENDING.value,
        )
    )
    if waiting is not None:  # an invitation or a reminder carrying the link goes out anyway
        raise PatientDataError(
            "resend", N_("The link is already waiting to be sent (within sending hours).")
        )
    resends = session.scalars(
        select(OutboxMessage.status).where(
            OutboxMessage.assessment_id == assessment.id,
            OutboxMessage.kind == "resend",
            OutboxMessage.created_at > now - RESEND_PERIOD,
        )
    ).all()
    if len(resends) >= RESEND_LIMIT:
        raise PatientDataError(
            "resend",
            N_("The link was already sent again %(count)d times in the last 24 hours."),
            count=len(resends),
        )
    try:
        return queue_resend(session, now=now, actor=actor, assessment=assessment)
    except ResendRefused as exc:  # a rule of queue_resend this module does not know yet
        raise PatientDataError(
            "resend", N_("The link cannot be sent again: %(problem)s"), problem=str(exc)
        ) from exc


def opt_back_in(
    session: Session, *, now: datetime, actor: Actor, patient: Patient, reason: str
) -> int:
    """The patient asked for SMS again (told the nurse): undo the opt-out, with a reason.

    Open time points whose invitation never went out get one; returns how many.
    """
    try:
        reason_text = require_reason(reason)
    except ScheduleChangeError as exc:
        raise PatientDataError.from_schedule_error(exc) from exc
    if not patient.opted_out:
        raise PatientDataError("reason", N_("The patient has not opted out of SMS."))
    opted_out_at = patient.opted_out_at
    patient.opted_out = False
    patient.opted_out_at = None
    patient.updated_at = now
    announced = announce_again_after_opt_in(session, patient=patient)
    session.flush()
    record(
        session,
        now=now,
        actor=actor,
        action="patient.opted_in",
        object_type="patient",
        object_id=patient.id,
        site_id=patient.site_id,
        before={"opted_out": True, "opted_out_at": opted_out_at},
        after={"opted_out": False, "via": "staff", "invitations_requeued": announced},
        reason=reason_text,
    )
    return announced


def reveal_link(
    session: Session,
    *,
    now: datetime,
    actor: Actor,
    vault: Vault,
    base_url: str,
    patient: Patient,
    assessment: Assessment,
) -> str:
    """The current questionnaire link of an open time point, for a nurse to give the patient
    another way (read out on the telephone, when the number does not work). Audited, without
    the link."""
    if assessment.patient_id != patient.id or assessment.status not in OPEN_STATES:
        raise PatientDataError("link", N_("The patient has no open questionnaire link."))
    token = current_token(assessment, vault)
    if token is None:
        raise PatientDataError("link", N_("The patient has no open questionnaire link."))
    record(
        session,
        now=now,
        actor=actor,
        action="assessment.link_viewed",
        object_type="assessment",
        object_id=assessment.id,
        site_id=patient.site_id,
        after={"timepoint": assessment.timepoint},
    )
    return patient_link(base_url, token)


def record_phone_viewed(session: Session, *, now: datetime, actor: Actor, patient: Patient) -> None:
    """A nurse looked at the decrypted number: audited, without the number."""
    record(
        session,
        now=now,
        actor=actor,
        action="patient.phone_viewed",
        object_type="patient",
        object_id=patient.id,
        site_id=patient.site_id,
        after={"has_phone": patient.phone_encrypted is not None},
    )
