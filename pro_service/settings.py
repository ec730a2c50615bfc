"""One frozen settings object, built from ``PRO_*`` environment variables.

Development needs nothing set: SQLite under ``instance/`` and the console SMS backend.
``PRO_ENV=production`` refuses to start while a required variable is missing and names each one.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: The study data and compiled catalogs an installed package carries (setup.py puts them there).
PACKAGE_DATA = Path(__file__).resolve().parent / "_data"
#: A source checkout (``make run``, the tests, an editable install) uses the top-level sources;
#: an installed wheel uses the copies inside the package, from any folder.
SOURCE_CHECKOUT = (PROJECT_ROOT / "pyproject.toml").is_file() and (
    PROJECT_ROOT / "questionnaires"
).is_dir()
DATA_ROOT = PROJECT_ROOT if SOURCE_CHECKOUT else PACKAGE_DATA
TRANSLATIONS_DIR = DATA_ROOT / "translations"

# Development-only values: never used when PRO_ENV=production (start-up refuses instead).
_DEV_SECRET_KEY = "development-only-secret-key-not-for-production"  # noqa: S105
_DEV_ENCRYPTION_KEY = "ZGV2ZWxvcG1lbnQtb25seS1lbmNyeXB0aW9uLWtleSE="  # Fernet key, dev only

ENVIRONMENTS = ("development", "test", "production")
SMS_BACKENDS = ("console", "twilio")
#: The most SMS one scheduler process may have in flight (PRO_SMS_POOL_SIZE).
MAX_SMS_POOL_SIZE = 64
#: The highest niceness (lowest CPU priority) a process can take on Linux (PRO_SCHEDULER_NICENESS).
MAX_NICENESS = 19


class ConfigurationError(RuntimeError):
    """The environment does not describe a runnable service; the message says what to set."""


@dataclass(frozen=True)
class Settings:
    env: str
    secret_key: str
    database_url: str
    encryption_keys: tuple[str, ...]
    instance_dir: Path
    questionnaire_dir: Path
    instrument_text_dir: Path | None
    schedule_file: Path
    public_base_url: str
    sms_backend: str
    twilio_account_sid: str | None
    twilio_auth_token: str | None
    twilio_from: str | None
    twilio_messaging_service_sid: str | None
    twilio_api_base_url: str
    twilio_timeout_seconds: float
    sms_claim_lease_seconds: int
    sms_pool_size: int
    default_language: str
    max_request_bytes: int
    log_level: str
    trusted_proxy_count: int = 0
    link_rate_limit: int = 60
    staff_idle_minutes: int = 30
    # Strict-Transport-Security max-age in production (seconds); 0 sends no HSTS header.
    hsts_max_age: int = 31_536_000
    #: Bearer token of the Prometheus metrics endpoint; None: the endpoint does not exist.
    metrics_token: str | None = None
    #: How much the scheduler process lowers its own CPU priority (added to its niceness), so
    #: that the patient pages come first on a busy server during the 09:00 blast; 0 keeps it.
    scheduler_niceness: int = 10

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    def with_overrides(self, overrides: Mapping[str, Any]) -> Settings:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigurationError(f"unknown setting(s): {', '.join(unknown)}")
        return replace(self, **dict(overrides))


def _get(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from ``environ`` (default: ``os.environ``)."""
    env_map: Mapping[str, str] = os.environ if environ is None else environ
    env = (_get(env_map, "PRO_ENV") or "development").lower()
    if env not in ENVIRONMENTS:
        raise ConfigurationError(f"PRO_ENV must be one of {', '.join(ENVIRONMENTS)}, not {env!r}")
    production = env == "production"

    # Outside a source checkout the instance folder is the working directory's (never inside
    # site-packages).
    default_instance = PROJECT_ROOT / "instance" if SOURCE_CHECKOUT else Path.cwd() / "instance"
    instance_dir = Path(_get(env_map, "PRO_INSTANCE_DIR") or default_instance).resolve()
    questionnaire_dir = Path(
        _get(env_map, "PRO_QUESTIONNAIRE_DIR") or DATA_ROOT / "questionnaires"
    ).resolve()
    text_dir_raw = _get(env_map, "PRO_INSTRUMENT_TEXT_DIR")
    schedule_raw = _get(env_map, "PRO_SCHEDULE_FILE")

    missing: list[str] = []
    problems: list[str] = []

    def required(name: str, dev_default: str) -> str:
        value = _get(env_map, name)
        if value is None:
            if production:
                missing.append(name)
                return ""
            return dev_default
        return value

    secret_key = required("PRO_SECRET_KEY", _DEV_SECRET_KEY)
    database_url = required("PRO_DATABASE_URL", f"sqlite:///{instance_dir / 'pro_service.sqlite3'}")
    encryption_raw = required("PRO_ENCRYPTION_KEY", _DEV_ENCRYPTION_KEY)
    public_base_url = required("PRO_PUBLIC_BASE_URL", "http://127.0.0.1:5000").rstrip("/")

    sms_backend = _get(env_map, "PRO_SMS_BACKEND") or ("twilio" if production else "console")
    sms_backend = sms_backend.lower()
    if sms_backend not in SMS_BACKENDS:
        problems.append(
            f"PRO_SMS_BACKEND must be one of {', '.join(SMS_BACKENDS)}, not {sms_backend!r}"
        )
    if production and sms_backend == "console":
        problems.append("PRO_SMS_BACKEND=console cannot be used in production; use twilio")

    twilio_sid = _get(env_map, "PRO_TWILIO_ACCOUNT_SID")
    twilio_token = _get(env_map, "PRO_TWILIO_AUTH_TOKEN")
    twilio_from = _get(env_map, "PRO_TWILIO_FROM")
    twilio_service = _get(env_map, "PRO_TWILIO_MESSAGING_SERVICE_SID")
    if sms_backend == "twilio" and (production or env == "development"):
        for name, value in (
            ("PRO_TWILIO_ACCOUNT_SID", twilio_sid),
            ("PRO_TWILIO_AUTH_TOKEN", twilio_token),
        ):
            if value is None:
                missing.append(name)
        if twilio_from is None and twilio_service is None:
            missing.append("PRO_TWILIO_FROM or PRO_TWILIO_MESSAGING_SERVICE_SID")

    if production and secret_key and len(secret_key) < 32:
        problems.append("PRO_SECRET_KEY must be at least 32 characters long")

    encryption_keys = tuple(k.strip() for k in encryption_raw.split(",") if k.strip())
    if encryption_raw:
        for index, key in enumerate(encryption_keys, start=1):
            if not _is_fernet_key(key):
                problems.append(
                    f"PRO_ENCRYPTION_KEY key #{index} is not a valid Fernet key "
                    "(32 url-safe base64-encoded bytes; make one with `pro-service generate-key`)"
                )

    default_language = (_get(env_map, "PRO_DEFAULT_LANGUAGE") or "sv").lower()
    if default_language not in ("sv", "fi", "en"):
        problems.append(f"PRO_DEFAULT_LANGUAGE must be sv, fi or en, not {default_language!r}")

    def number(name: str, default: str, kind: type[int] | type[float]) -> Any:
        raw = _get(env_map, name) or default
        try:
            value = kind(raw)
        except ValueError:
            problems.append(f"{name} must be a number, not {raw!r}")
            return kind(default)
        if value <= 0:
            problems.append(f"{name} must be positive, not {raw!r}")
            return kind(default)
        return value

    timeout = number("PRO_TWILIO_TIMEOUT_SECONDS", "10", float)
    claim_lease = number("PRO_SMS_CLAIM_LEASE_SECONDS", "300", int)
    sms_pool_size = number("PRO_SMS_POOL_SIZE", "8", int)
    if sms_pool_size > MAX_SMS_POOL_SIZE:
        problems.append(
            f"PRO_SMS_POOL_SIZE must be at most {MAX_SMS_POOL_SIZE} SMS in flight per scheduler "
            f"process, not {sms_pool_size}"
        )
    if claim_lease <= 3 * timeout and not problems:
        problems.append(
            "PRO_SMS_CLAIM_LEASE_SECONDS must be more than three times PRO_TWILIO_TIMEOUT_SECONDS "
            "(a claim must outlive the provider call it covers)"
        )
    max_request_bytes = number("PRO_MAX_REQUEST_BYTES", "65536", int)
    link_rate_limit = number("PRO_LINK_RATE_LIMIT", "60", int)
    staff_idle_minutes = number("PRO_STAFF_IDLE_MINUTES", "30", int)

    def whole(name: str, default: str, what: str) -> int:
        raw = _get(env_map, name) or default
        if not (raw.isascii() and raw.isdigit()):
            problems.append(f"{name} must be a whole number of {what} (0 or more), not {raw!r}")
            return int(default)
        return int(raw)

    trusted_proxy_count = whole("PRO_TRUSTED_PROXY_COUNT", "0", "proxies")
    hsts_max_age = whole("PRO_HSTS_MAX_AGE", "31536000", "seconds")
    scheduler_niceness = whole("PRO_SCHEDULER_NICENESS", "10", "steps")
    if scheduler_niceness > MAX_NICENESS:
        problems.append(
            f"PRO_SCHEDULER_NICENESS must be at most {MAX_NICENESS} (the lowest CPU priority), "
            f"not {scheduler_niceness}"
        )
    metrics_token = _get(env_map, "PRO_METRICS_TOKEN") or None
    if metrics_token is not None and len(metrics_token) < 32:
        problems.append("PRO_METRICS_TOKEN must be at least 32 characters (it guards /metrics)")

    if missing or problems:
        lines = []
        if missing:
            lines.append(f"PRO_ENV={env} needs these environment variables: " + ", ".join(missing))
        lines.extend(problems)
        raise ConfigurationError("; ".join(lines))

    return Settings(
        env=env,
        secret_key=secret_key,
        database_url=database_url,
        encryption_keys=encryption_keys,
        instance_dir=instance_dir,
        questionnaire_dir=questionnaire_dir,
        instrument_text_dir=Path(text_dir_raw).resolve() if text_dir_raw else None,
        schedule_file=Path(schedule_raw).resolve()
        if schedule_raw
        else questionnaire_dir / "schedules" / "scanpan.yaml",
        public_base_url=public_base_url,
        sms_backend=sms_backend,
        twilio_account_sid=twilio_sid,
        twilio_auth_token=twilio_token,
        twilio_from=twilio_from,
        twilio_messaging_service_sid=twilio_service,
        twilio_api_base_url=(
            _get(env_map, "PRO_TWILIO_API_BASE_URL") or "https://api.twilio.com"
        ).rstrip("/"),
        twilio_timeout_seconds=timeout,
        sms_claim_lease_seconds=claim_lease,
        sms_pool_size=sms_pool_size,
        default_language=default_language,
        max_request_bytes=max_request_bytes,
        log_level=(_get(env_map, "PRO_LOG_LEVEL") or "INFO").upper(),
        trusted_proxy_count=trusted_proxy_count,
        link_rate_limit=link_rate_limit,
        staff_idle_minutes=staff_idle_minutes,
        hsts_max_age=hsts_max_age,
        metrics_token=metrics_token,
        scheduler_niceness=scheduler_niceness,
    )


def _is_fernet_key(key: str) -> bool:
    """Whether ``Fernet(key)`` accepts ``key``: 32 bytes, url-safe base64-encoded, decoded as
    Fernet decodes it. Checked without importing cryptography, which every command would pay
    for (``pro-service score`` never encrypts); the tests hold the two to the same answers."""
    try:
        return len(base64.urlsafe_b64decode(key)) == 32
    except (binascii.Error, ValueError):
        return False
