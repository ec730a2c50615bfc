"""PRO Service: patient-reported outcomes collected by SMS link, scheduled, scored and exported."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import logging_privacy
from .settings import TRANSLATIONS_DIR, Settings, load_settings

if TYPE_CHECKING:
    from flask import Flask

LANGUAGES = ("sv", "fi", "en")


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the web app: :func:`create_base_app` plus the pages (blueprints, templates) and
    the ``pro-service`` commands. Nothing here opens a connection or starts a thread.

    ``overrides`` holds settings fields in lower case (``database_url``...) and plain Flask
    config keys in upper case (``TESTING``...).
    """
    app = create_base_app(overrides)

    from .cli import register_commands
    from .web import register_web
    from .web.i18n import ensure_catalogs, page_translations

    ensure_catalogs(
        TRANSLATIONS_DIR, LANGUAGES, production=app.config["PRO_SETTINGS"].is_production
    )
    app.context_processor(page_translations)
    register_web(app)
    register_commands(app)
    return app


def create_base_app(overrides: Mapping[str, Any] | None = None, *, database: bool = True) -> Flask:
    """The app without web pages, for the scheduler and the commands that serve no page:
    settings, logging, the database, Babel, CSRF, the instruments, the visit schedule, the
    message texts and the encryption keys. No blueprint, template or page module is imported
    (the web stack costs most of the start-up time).

    ``database=False`` also leaves out the database, Babel and CSRF, for commands that only read
    and write files (``score`` run through an app's command group; the console script runs it
    with no app, checking only the settings and the instrument files it scores with). The data
    files are checked either way, so a bad file stops every command that builds an app at
    start-up. ``overrides`` as for :func:`create_app`.
    """
    from flask import Flask

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
    logging_privacy.install()
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

    if database:
        from .extensions import babel, csrf, db

        db.init_app(app)
        csrf.init_app(app)
        babel.init_app(app, locale_selector=_select_locale)

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

    from .answering.missing_reasons import load_missing_reasons

    app.extensions["missing_reasons"] = load_missing_reasons(
        settings.questionnaire_dir / "missing-reasons.yaml"
    )

    return app


def _select_locale() -> str:
    """The web layer's locale selection, imported only when a request first needs a locale, so
    that commands without web pages never import the web package."""
    from .web.i18n import select_locale

    return select_locale()
