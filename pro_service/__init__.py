"""PRO Service: patient-reported outcomes collected by SMS link, scheduled, scored and exported."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask

from .settings import PROJECT_ROOT, Settings, load_settings

TRANSLATIONS_DIR = PROJECT_ROOT / "translations"
LANGUAGES = ("sv", "fi", "en")


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the web app. Nothing here opens a connection or starts a thread.

    ``overrides`` holds settings fields in lower case (``database_url``...) and plain Flask
    config keys in upper case (``TESTING``...).
    """
    settings: Settings = load_settings()
    overrides = dict(overrides or {})
    setting_overrides = {k: v for k, v in overrides.items() if k.islower()}
    if setting_overrides:
        settings = settings.with_overrides(setting_overrides)

    app = Flask(__name__, instance_path=str(settings.instance_dir))
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    app.config.update(
        PRO_SETTINGS=settings,
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.is_production,
        # __Host-: the browser keeps it only if Secure, for this host and path / (production).
        SESSION_COOKIE_NAME="__Host-session" if settings.is_production else "session",
        WTF_CSRF_TIME_LIMIT=None,
        # Referrer-Policy: no-referrer means browsers send no Referer, which Flask-WTF's strict
        # HTTPS check would refuse; the session-bound CSRF token and SameSite cookies remain.
        WTF_CSRF_SSL_STRICT=False,
        BABEL_DEFAULT_LOCALE=settings.default_language,
        BABEL_TRANSLATION_DIRECTORIES=str(TRANSLATIONS_DIR),
    )
    app.config.update({k: v for k, v in overrides.items() if k.isupper()})

    if settings.database_url.startswith("sqlite:///"):
        settings.instance_dir.mkdir(parents=True, exist_ok=True)

    from .extensions import babel, csrf, db
    from .web.i18n import page_translations, select_locale

    db.init_app(app)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    app.context_processor(page_translations)

    from .crypto import Vault
    from .instruments import load_instruments
    from .scheduling.schedule import load_schedule

    app.extensions["vault"] = Vault(settings.encryption_keys)
    instruments = load_instruments(settings.questionnaire_dir, settings.instrument_text_dir)
    app.extensions["instruments"] = instruments
    app.extensions["schedule"] = load_schedule(settings.schedule_file, instruments)

    from .messaging.texts import load_message_texts

    app.extensions["message_texts"] = load_message_texts(
        settings.questionnaire_dir / "messages.yaml", settings.public_base_url
    )

    from .answering.missing import load_missing_reasons

    app.extensions["missing_reasons"] = load_missing_reasons(
        settings.questionnaire_dir / "missing-reasons.yaml"
    )

    from .cli import register_commands
    from .web import register_web

    register_web(app)
    register_commands(app)
    return app
