"""SMS fixtures: a fake Twilio server on 127.0.0.1 that the real ``twilio`` library talks to."""

from __future__ import annotations

from datetime import date

import pytest

from pro_service.audit import Actor
from pro_service.patients.registry import register_patient
from pro_service.staff.accounts import create_site

from .fake_twilio import FakeTwilio

SENDER = "+46700000001"


@pytest.fixture
def fake_twilio():
    fake = FakeTwilio().start()
    yield fake
    fake.stop()


@pytest.fixture
def app_overrides(app_overrides, fake_twilio):
    return {
        **app_overrides,
        "sms_backend": "twilio",
        "twilio_account_sid": fake_twilio.account_sid,
        "twilio_auth_token": fake_twilio.auth_token,
        "twilio_from": SENDER,
        "twilio_api_base_url": fake_twilio.base_url,
        "twilio_timeout_seconds": 1.0,
    }


@pytest.fixture
def make_site(session, now):
    def _make(code="SE-LUN", time_zone="Europe/Stockholm", country="SE", language="sv"):
        return create_site(
            session,
            now=now,
            actor=Actor.operator(),
            code=code,
            name=code,
            country=country,
            time_zone=time_zone,
            default_language=language,
        )

    return _make


@pytest.fixture
def make_patient(app, session, now):
    counter = iter(range(1, 100_000))

    def _make(
        site,
        *,
        phone="070-174 06 05",
        language="sv",
        inclusion=date(2026, 3, 16),
        surgery=None,
        at=None,
    ):
        return register_patient(
            session,
            now=at or now,
            actor=Actor.staff(1),
            vault=app.extensions["vault"],
            schedule=app.extensions["schedule"],
            site=site,
            study_id=f"P-{next(counter):05d}",
            phone=phone,
            language=language,
            inclusion_date=inclusion,
            surgery_date=surgery,
        )

    return _make
