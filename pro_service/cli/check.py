"""``pro-service check``: whether this installation is ready, one line per check, each with the
fix when it fails. It builds nothing it does not need, so that a broken setting or file is
reported as a line rather than a stack trace."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import click

from .. import LANGUAGES
from ..settings import TRANSLATIONS_DIR, ConfigurationError, Settings, load_settings

#: A scheduler that ran no pass for this long is reported as not running.
SCHEDULER_SILENT = timedelta(minutes=5)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def run_checks() -> Iterator[Check]:
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        yield Check("settings", False, str(exc), "set the variables named (README.md, Settings)")
        return
    yield Check("settings", True, f"complete for PRO_ENV={settings.env}")
    yield _public_url(settings)
    yield from _catalogs()
    app = None
    try:
        from .. import create_base_app

        app = create_base_app()
    except (ConfigurationError, ValueError, OSError) as exc:
        yield Check(
            "study files", False, str(exc), "correct the file and field named (docs/*-format.md)"
        )
    else:
        instruments = app.extensions["instruments"]
        yield Check(
            "study files",
            True,
            f"{len(list(instruments))} instrument versions, schedule "
            f"{settings.schedule_file.name}, message texts and missing reasons valid",
        )
        yield _licensed_text(settings)
    if app is not None:
        with app.app_context():
            yield from _database(app)


def _public_url(settings: Settings) -> Check:
    url = settings.public_base_url
    if settings.is_production and not url.startswith("https://"):
        return Check(
            "public URL",
            False,
            f"{url} is not https: patients' links would travel unencrypted",
            "set PRO_PUBLIC_BASE_URL to the https:// address of the reverse proxy",
        )
    return Check("public URL", True, url)


def _catalogs() -> Iterator[Check]:
    for language in LANGUAGES:
        folder = TRANSLATIONS_DIR / language / "LC_MESSAGES"
        compiled, source = folder / "messages.mo", folder / "messages.po"
        if not compiled.is_file():
            yield Check(
                f"catalog {language}",
                False,
                f"{compiled} is missing: pages would be in English",
                "run `make translations` in a checkout, or reinstall the package",
            )
        elif source.is_file() and compiled.stat().st_mtime < source.stat().st_mtime:
            yield Check(
                f"catalog {language}",
                False,
                f"{compiled} is older than {source.name}: pages would miss new translations",
                "run `make translations`",
            )
        else:
            yield Check(f"catalog {language}", True, str(compiled))


def _licensed_text(settings: Settings) -> Check:
    if settings.instrument_text_dir is None:
        return Check(
            "item text", True, "the project's paraphrases (PRO_INSTRUMENT_TEXT_DIR not set)"
        )
    return Check("item text", True, f"licensed text from {settings.instrument_text_dir}")


def _database(app) -> Iterator[Check]:
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from .. import migrate
    from ..clock import utcnow
    from ..extensions import db
    from ..models import Patient
    from ..scheduler.jobs import last_heartbeat

    try:
        current = migrate.current_revision(db.engine)
    except SQLAlchemyError as exc:
        yield Check(
            "database",
            False,
            f"cannot connect: {type(exc).__name__}: {str(exc).splitlines()[0]}",
            "check PRO_DATABASE_URL and that the database server is running",
        )
        return
    head = migrate.head_revision()
    if current != head:
        yield Check(
            "database",
            False,
            f"at migration {current or '(none)'}, the newest is {head}",
            "run `pro-service db upgrade`",
        )
        return
    yield Check("database", True, f"reachable, at the newest migration ({head})")

    stored = db.session.scalar(
        select(Patient.phone_encrypted).where(Patient.phone_encrypted.is_not(None)).limit(1)
    )
    if stored is None:
        yield Check("encryption key", True, "no stored phone number to open yet")
    else:
        try:
            app.extensions["vault"].decrypt(stored)
        except Exception:  # noqa: BLE001 - any failure means the same thing here
            yield Check(
                "encryption key",
                False,
                "PRO_ENCRYPTION_KEY does not open the stored phone numbers",
                "put the key they were encrypted with in PRO_ENCRYPTION_KEY (after a new one)",
            )
        else:
            yield Check("encryption key", True, "opens a stored phone number")

    last = last_heartbeat(db.session)
    now = utcnow()
    if last is None or now - last > SCHEDULER_SILENT:
        when = "never" if last is None else f"last at {last:%Y-%m-%d %H:%M} UTC"
        yield Check(
            "scheduler",
            False,
            f"no scheduler pass in the last {SCHEDULER_SILENT.seconds // 60} minutes ({when})",
            "start it: `systemctl start pro-service-scheduler` (or `pro-service scheduler`)",
        )
    else:
        yield Check("scheduler", True, f"last pass {int((now - last).total_seconds())} s ago")


@click.command("check")
def check_command() -> None:
    """Say whether this installation is ready: OK or FAIL per check."""
    failed = 0
    for check in run_checks():
        click.echo(f"{'OK  ' if check.ok else 'FAIL'}  {check.name:16} {check.detail}")
        if not check.ok:
            failed += 1
            if check.fix:
                click.echo(f"      {'':16} fix: {check.fix}")
    if failed:
        raise click.ClickException(f"{failed} check(s) failed")
    click.echo("Ready.")
