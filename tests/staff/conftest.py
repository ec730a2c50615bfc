"""Staff page fixtures: two sites, named personas, patients, and signing in through the form.

Personas (the issue's access matrix): two nurses at SE-UPP, one nurse at FI-HEL, an investigator
for every site, an investigator for SE-UPP only, a data manager and an admin.
Data is made relative to the real clock, because the pages read it.
The admin persona has two-factor sign-in (``TOTP_SECRETS``); :func:`sign_in` enters its code.

Do not use the ``session`` fixture in tests that make requests: it keeps an application context
open, which every request would then share (and with it ``g``: the CSRF token and the locale of
an earlier request). Read the database with :func:`read` (its own application context) instead.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import pyotp
import pytest

from pro_service.audit import Actor
from pro_service.clock import utcnow
from pro_service.extensions import db
from pro_service.models import StaffUser
from pro_service.patients.registry import register_patient
from pro_service.staff.accounts import create_site, create_user

T = TypeVar("T")
PASSWORD = "correct horse battery staple"
CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')

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


def totp_code(secret: str, step: int) -> str:
    """The code of one 30-second time step."""
    return pyotp.TOTP(secret).generate_otp(step)


def csrf_of(html: str) -> str:
    match = CSRF_FIELD.search(html)
    assert match, "the page has no CSRF token"
    return match.group(1)


@dataclass
class StaffStudy:
    sites: dict[str, int]  # code -> id
    users: dict[str, int]  # persona -> id
    patients: dict[str, int]  # study id -> id

    def email(self, persona: str) -> str:
        return PERSONAS[persona][0]


def read(app, query: Callable[..., T]) -> T:  # type: ignore[no-untyped-def]
    """Run ``query(session)`` in a fresh application context and return its result."""
    with app.app_context():
        try:
            return query(db.session)
        finally:
            db.session.rollback()


@pytest.fixture
def staff_study(app) -> StaffStudy:
    with app.app_context():
        try:
            return _make_study(app, db.session)
        finally:
            db.session.close()


def _make_study(app, session) -> StaffStudy:  # type: ignore[no-untyped-def]
    now = utcnow()
    sites = {
        "SE-UPP": create_site(
            session,
            now=now,
            actor=Actor.operator(),
            code="SE-UPP",
            name="Uppsala",
            country="SE",
            time_zone="Europe/Stockholm",
            default_language="sv",
            study_id_pattern=r"UPP-\d{3}",
        ),
        "FI-HEL": create_site(
            session,
            now=now,
            actor=Actor.operator(),
            code="FI-HEL",
            name="Helsinki",
            country="FI",
            time_zone="Europe/Helsinki",
            default_language="fi",
            study_id_pattern=r"HEL-\d{3}",
        ),
    }
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
        patients[study_id] = register_patient(
            session,
            now=now,
            actor=Actor.operator(),
            vault=app.extensions["vault"],
            schedule=app.extensions["schedule"],
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


def sign_in_with_password(client, email: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    """Post the sign-in form (read in English, so tests can name the messages)."""
    page = client.get("/staff/login?lang=en")
    return client.post(
        "/staff/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(page.text)},
    )


def enter_code(app, client, user_id: int, secret: str):  # type: ignore[no-untyped-def]
    """Post the sign-in code step with a code the server has not seen yet.

    A time step is accepted once, and within one step of now: this takes the current step, else
    the next one (never the previous one, which a step boundary could put out of reach). When
    both are used (a third sign-in within 30 s), it marks the steps before now as the last used
    instead of moving the clock: a cookie signed in the future is refused back in the present.
    """
    now_step = int(time.time()) // 30
    last = read(app, lambda s: s.get(StaffUser, user_id).totp_last_step)
    if last is not None and last > now_step:
        with app.app_context():
            db.session.get(StaffUser, user_id).totp_last_step = now_step - 1
            db.session.commit()
        last = now_step - 1
    step = now_step if last is None or last < now_step else now_step + 1
    page = client.get("/staff/login/code?lang=en")
    return client.post(
        "/staff/login/code",
        data={"code": totp_code(secret, step), "csrf_token": csrf_of(page.text)},
    )


@pytest.fixture
def sign_in(app, staff_study) -> Callable[..., object]:
    """A test client signed in as ``persona`` (completing any second factor it needs)."""

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
