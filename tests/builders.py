"""The one way tests build a study: sites, staff personas and patients, made through the services
as in real use. The fixtures at the end are imported by the top ``conftest.py``.

Personas (the access matrix): two nurses at SE-UPP, one nurse at FI-HEL, an investigator for
every site, an investigator for SE-UPP only, a data manager and an admin. The admin persona has
two-factor sign-in (``TOTP_SECRETS``); :func:`pages.enter_code` enters its code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from pro_service.audit import Actor
from pro_service.clock import utcnow
from pro_service.extensions import db
from pro_service.models import Patient, Site, StaffUser
from pro_service.patients.registry import register_patient
from pro_service.patients.schedule_changes import change_surgery_date, end_participation
from pro_service.scheduling.assessments import local_today
from pro_service.staff.accounts import create_site, create_user

PASSWORD = "correct horse battery staple"

#: Sites tests use, by code: the fields ``create_site`` takes besides the code.
SITES: dict[str, dict[str, Any]] = {
    "SE-UPP": {
        "name": "Uppsala",
        "country": "SE",
        "time_zone": "Europe/Stockholm",
        "default_language": "sv",
    },
    "FI-HEL": {
        "name": "Helsinki",
        "country": "FI",
        "time_zone": "Europe/Helsinki",
        "default_language": "fi",
    },
    "SE-LUN": {
        "name": "SE-LUN",
        "country": "SE",
        "time_zone": "Europe/Stockholm",
        "default_language": "sv",
    },
    "TEST": {
        "name": "Test site",
        "country": "SE",
        "time_zone": "Europe/Stockholm",
        "default_language": "sv",
    },
}

PERSONAS = {
    # name: (email, role, site codes, all sites)
    "nurse_upp": ("anna.nurse@upp.example.org", "nurse", ("SE-UPP",), False),
    "nurse_upp2": ("bo.nurse@upp.example.org", "nurse", ("SE-UPP",), False),
    "nurse_hel": ("hanna.nurse@hel.example.org", "nurse", ("FI-HEL",), False),
    "investigator": ("pi@example.org", "investigator", (), True),
    "investigator_upp": ("pi.upp@example.org", "investigator", ("SE-UPP",), False),
    "data_manager": ("dm@example.org", "data_manager", (), True),
    "admin": ("admin@example.org", "admin", (), True),
}

#: Authenticator secrets of the personas with two-factor sign-in (admins must have it).
TOTP_SECRETS = {"admin": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"}


def build_site(  # type: ignore[no-untyped-def]
    session, *, now: datetime, code: str, actor: Actor | None = None, **fields: Any
) -> Site:
    """A site from :data:`SITES` (another code: a Swedish site of that name), changed by
    ``fields`` (``create_site``'s arguments)."""
    defaults = SITES.get(code, {**SITES["SE-LUN"], "name": code})
    return create_site(
        session, now=now, actor=actor or Actor.operator(), code=code, **defaults | fields
    )


def build_patient(  # type: ignore[no-untyped-def]
    app,
    session,
    *,
    now: datetime,
    site: Site,
    study_id: str,
    phone: str | None = "070-174 06 05",
    language: str = "sv",
    inclusion_date: date,
    surgery_date: date | None = None,
    actor: Actor | None = None,
) -> Patient:
    """Register a patient as a nurse does (time points created from the schedule)."""
    return register_patient(
        session,
        now=now,
        actor=actor or Actor.staff(1),
        vault=app.extensions["vault"],
        schedule=app.extensions["schedule"],
        site=site,
        study_id=study_id,
        phone=phone,
        language=language,
        inclusion_date=inclusion_date,
        surgery_date=surgery_date,
    )


def move_surgery(  # type: ignore[no-untyped-def]
    app,
    session,
    patient: Patient,
    new_date: date | None,
    *,
    now: datetime,
    reason: str = "moved by the surgeons",
    actor: Actor | None = None,
) -> None:
    """Move (or set) the surgery date as a nurse does on the surgery page; committed."""
    change_surgery_date(
        session,
        now=now,
        actor=actor or Actor.staff(1),
        schedule=app.extensions["schedule"],
        vault=app.extensions["vault"],
        patient=patient,
        new_date=new_date,
        reason=reason,
    )
    session.commit()


def leave(  # type: ignore[no-untyped-def]
    app,
    session,
    patient: Patient,
    status: str,
    *,
    now: datetime,
    reason: str,
    on: date | None = None,
    kind: str | None = None,
    actor: Actor | None = None,
):
    """Record that the patient left the study, or was not operated (``status``), on ``on``
    (default: the site's today), as a nurse does on the status page. Not committed; returns
    the cancelled time points."""
    return end_participation(
        session,
        now=now,
        actor=actor or Actor.staff(1),
        schedule=app.extensions["schedule"],
        vault=app.extensions["vault"],
        patient=patient,
        status=status,
        status_date=on or local_today(patient.site, now),
        withdrawal_kind=kind or ("study" if status == "withdrawn" else None),
        reason=reason,
        registry=app.extensions["instruments"],
    )


def build_staff(app, session, *, now: datetime, sites: dict[str, Site]) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Every persona as a staff account (two-factor set where TOTP_SECRETS has one)."""
    users = {}
    for persona, (email, role, codes, all_sites) in PERSONAS.items():
        users[persona] = create_user(
            session,
            now=now,
            actor=Actor.operator(),
            email=email,
            password=PASSWORD,
            role=role,
            sites=[sites[c] for c in codes],
            all_sites=all_sites,
            language="en",
        ).id
    for persona, secret in TOTP_SECRETS.items():
        user = session.get(StaffUser, users[persona])
        user.totp_secret_encrypted = app.extensions["vault"].encrypt(secret)
    return users


@dataclass
class StaffStudy:
    sites: dict[str, int]  # code -> id
    users: dict[str, int]  # persona -> id
    patients: dict[str, int]  # study id -> id

    def email(self, persona: str) -> str:
        return PERSONAS[persona][0]


def build_staff_study(app, session) -> StaffStudy:  # type: ignore[no-untyped-def]
    """Two sites, every persona and three patients, relative to the real clock (pages read it)."""
    now = utcnow()
    sites = {
        "SE-UPP": build_site(session, now=now, code="SE-UPP", study_id_pattern=r"UPP-\d{3}"),
        "FI-HEL": build_site(session, now=now, code="FI-HEL", study_id_pattern=r"HEL-\d{3}"),
    }
    users = build_staff(app, session, now=now, sites=sites)
    today = now.date()
    patients = {}
    for study_id, code, phone, language, included, surgery in (
        (
            "UPP-001",
            "SE-UPP",
            "070-174 06 05",
            "sv",
            today - timedelta(days=20),
            today + timedelta(days=5),
        ),
        (
            "UPP-002",
            "SE-UPP",
            "070-174 06 06",
            "en",
            today - timedelta(days=120),
            today - timedelta(days=95),
        ),
        ("HEL-001", "FI-HEL", "+358 50 123 4567", "fi", today - timedelta(days=3), None),
    ):
        patients[study_id] = build_patient(
            app,
            session,
            now=now,
            actor=Actor.operator(),
            site=sites[code],
            study_id=study_id,
            phone=phone,
            language=language,
            inclusion_date=included,
            surgery_date=surgery,
        ).id
    session.commit()
    return StaffStudy(
        sites={code: site.id for code, site in sites.items()}, users=users, patients=patients
    )


# Fixtures (imported by tests/conftest.py) ----------------------------------------------------


@pytest.fixture
def staff_study(app) -> StaffStudy:  # type: ignore[no-untyped-def]
    with app.app_context():
        try:
            return build_staff_study(app, db.session)
        finally:
            db.session.close()


@pytest.fixture
def sign_in(app, staff_study) -> Callable[..., object]:  # type: ignore[no-untyped-def]
    """A test client signed in as ``persona`` (completing any second factor it needs)."""
    from pages import enter_code, sign_in_with_password

    def _sign_in(persona: str):  # type: ignore[no-untyped-def]
        client = app.test_client()
        response = sign_in_with_password(client, staff_study.email(persona))
        assert response.status_code == 302, response.text
        if response.headers["Location"] == "/staff/login/code":
            secret = TOTP_SECRETS[persona]
            response = enter_code(app, client, staff_study.users[persona], secret)
            assert response.status_code == 302, response.text
        assert "/staff/login" not in response.headers["Location"]
        assert "/staff/account/two-factor" not in response.headers["Location"]
        return client

    return _sign_in


@pytest.fixture
def make_site(session, now):  # type: ignore[no-untyped-def]
    """``make_site(code="SE-LUN", **fields)`` in the ``session`` fixture, at ``now``
    (``language`` stands for ``default_language``)."""

    def _make(code: str = "SE-LUN", **fields: Any) -> Site:
        if "language" in fields:
            fields["default_language"] = fields.pop("language")
        return build_site(session, now=now, code=code, **fields)

    return _make


@pytest.fixture
def make_patient(app, session, now):  # type: ignore[no-untyped-def]
    """``make_patient(site, **fields)`` with numbered study ids, in the ``session`` fixture."""
    counter = iter(range(1, 100_000))

    def _make(site: Site, *, at: datetime | None = None, **fields: Any) -> Patient:
        fields.setdefault("study_id", f"P-{next(counter):05d}")
        fields.setdefault("inclusion_date", date(2026, 3, 16))
        return build_patient(app, session, now=at or now, site=site, **fields)

    return _make
