"""SMS fixtures: a fake Twilio server on 127.0.0.1 that the real ``twilio`` library talks to."""

from __future__ import annotations

import pytest

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
