from __future__ import annotations

import base64

import hypothesis
import pytest
from hypothesis import strategies as st

from pro_service.settings import ConfigurationError, _is_fernet_key, load_settings

PRODUCTION_OK = {
    "PRO_ENV": "production",
    "PRO_SECRET_KEY": "x" * 40,
    "PRO_DATABASE_URL": "postgresql://pro@db/pro",
    "PRO_ENCRYPTION_KEY": "ZGV2ZWxvcG1lbnQtb25seS1lbmNyeXB0aW9uLWtleSE=",
    "PRO_PUBLIC_BASE_URL": "https://pro.example.org",
    "PRO_TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "PRO_TWILIO_AUTH_TOKEN": "secret",
    "PRO_TWILIO_FROM": "ScanPan",
}


def test_development_needs_no_configuration_and_uses_sqlite_in_instance():
    settings = load_settings({})
    assert settings.env == "development"
    assert settings.database_url.startswith("sqlite:///")
    assert settings.database_url.endswith("instance/pro_service.sqlite3")
    assert settings.sms_backend == "console"


def test_settings_are_frozen():
    settings = load_settings({})
    with pytest.raises(AttributeError):
        settings.env = "production"  # type: ignore[misc]


def test_production_starts_with_everything_set():
    settings = load_settings(PRODUCTION_OK)
    assert settings.is_production
    assert settings.sms_backend == "twilio"


@pytest.mark.parametrize(
    "missing",
    [
        "PRO_SECRET_KEY",
        "PRO_DATABASE_URL",
        "PRO_ENCRYPTION_KEY",
        "PRO_TWILIO_AUTH_TOKEN",
        "PRO_TWILIO_ACCOUNT_SID",
        "PRO_PUBLIC_BASE_URL",
    ],
)
def test_production_refuses_to_start_naming_the_missing_variable(missing):
    environ = {k: v for k, v in PRODUCTION_OK.items() if k != missing}
    with pytest.raises(ConfigurationError) as excinfo:
        load_settings(environ)
    assert missing in str(excinfo.value)


def test_production_names_every_missing_variable_at_once():
    with pytest.raises(ConfigurationError) as excinfo:
        load_settings({"PRO_ENV": "production"})
    message = str(excinfo.value)
    for name in (
        "PRO_SECRET_KEY",
        "PRO_DATABASE_URL",
        "PRO_ENCRYPTION_KEY",
        "PRO_TWILIO_ACCOUNT_SID",
        "PRO_TWILIO_AUTH_TOKEN",
        "PRO_TWILIO_FROM or PRO_TWILIO_MESSAGING_SERVICE_SID",
    ):
        assert name in message


def test_production_refuses_the_console_sms_backend():
    with pytest.raises(ConfigurationError, match="PRO_SMS_BACKEND=console"):
        load_settings({**PRODUCTION_OK, "PRO_SMS_BACKEND": "console"})


def test_a_messaging_service_replaces_the_sender():
    environ = {k: v for k, v in PRODUCTION_OK.items() if k != "PRO_TWILIO_FROM"}
    environ["PRO_TWILIO_MESSAGING_SERVICE_SID"] = "MG" + "0" * 32
    assert load_settings(environ).twilio_messaging_service_sid.startswith("MG")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PRO_ENCRYPTION_KEY", "not-a-key", "PRO_ENCRYPTION_KEY key #1 is not a valid Fernet key"),
        ("PRO_ENV", "staging", "PRO_ENV must be one of"),
        ("PRO_SMS_BACKEND", "carrier-pigeon", "PRO_SMS_BACKEND must be one of"),
        ("PRO_DEFAULT_LANGUAGE", "de", "PRO_DEFAULT_LANGUAGE must be sv, fi or en"),
        ("PRO_MAX_REQUEST_BYTES", "lots", "PRO_MAX_REQUEST_BYTES must be a number"),
    ],
)
def test_bad_values_are_named(name, value, message):
    with pytest.raises(ConfigurationError, match=message):
        load_settings({name: value})


def test_encryption_keys_can_be_rotated():
    old = "ZGV2ZWxvcG1lbnQtb25seS1lbmNyeXB0aW9uLWtleSE="
    new = "bmV3LWRldmVsb3BtZW50LW9ubHktZW5jcnlwdGlvbiE="
    settings = load_settings({"PRO_ENCRYPTION_KEY": f"{new}, {old}"})
    assert settings.encryption_keys == (new, old)


def test_readme_documents_every_setting():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    source = (root / "pro_service" / "settings.py").read_text(encoding="utf-8")
    readme = (root / "README.md").read_text(encoding="utf-8")
    import re

    names = set(re.findall(r'"(PRO_[A-Z_]+)"', source))
    assert "PRO_DATABASE_URL" in names
    assert sorted(n for n in names if f"`{n}`" not in readme) == []


def _fernet_accepts(key: str) -> bool:
    from cryptography.fernet import Fernet

    try:
        Fernet(key)
    except ValueError:
        return False
    return True


@hypothesis.settings(max_examples=400, deadline=None)
@hypothesis.given(
    st.one_of(
        st.binary(min_size=30, max_size=34).map(lambda raw: base64.urlsafe_b64encode(raw).decode()),
        st.binary(min_size=32, max_size=32).map(lambda raw: base64.b64encode(raw).decode()),
        st.binary(min_size=32, max_size=32).map(
            lambda raw: base64.urlsafe_b64encode(raw).decode().rstrip("=")
        ),
        st.text(max_size=50),
        st.text(alphabet="ABCabc012-_+/=!. é", min_size=40, max_size=48),
    )
)
def test_an_encryption_key_is_checked_as_fernet_checks_it(key: str):
    """Settings check PRO_ENCRYPTION_KEY without importing cryptography; the answer must be
    Fernet's own for every kind of text."""
    assert _is_fernet_key(key) == _fernet_accepts(key)
