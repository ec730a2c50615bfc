"""Registering patients. The phone number is validated, encrypted and never logged."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..audit import Actor, record
from ..crypto import Vault
from ..models import Patient, PatientStatus, Site
from ..scheduling.schedule import Schedule
from .assessments import create_assessments
from .phones import InvalidPhoneNumber, normalise_phone


class PatientDataError(ValueError):
    """Invalid patient data; ``field`` names the form field at fault."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


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
) -> Patient:
    study_id = study_id.strip()
    if not study_id:
        raise PatientDataError("study_id", "a study ID is required")
    if site.study_id_pattern:
        import re

        if not re.fullmatch(site.study_id_pattern, study_id):
            raise PatientDataError(
                "study_id",
                f"{study_id!r} does not match this site's format {site.study_id_pattern}",
            )
    if session.scalar(select(Patient.id).where(Patient.study_id == study_id)) is not None:
        raise PatientDataError("study_id", f"a patient with study ID {study_id!r} already exists")
    if language not in ("sv", "fi", "en"):
        raise PatientDataError("language", f"language must be sv, fi or en, not {language!r}")
    if surgery_date is not None and surgery_date < inclusion_date:
        raise PatientDataError("surgery_date", "the surgery date is before the inclusion date")

    phone_encrypted = phone_lookup = None
    phone_invalid = True
    if phone:
        try:
            e164 = normalise_phone(phone, site.country)
        except InvalidPhoneNumber as exc:
            raise PatientDataError("phone", str(exc)) from exc
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
