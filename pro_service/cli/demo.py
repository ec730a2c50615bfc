from __future__ import annotations

import os
import signal
import subprocess
import sys

import click
from flask import current_app
from flask.cli import with_appcontext
from werkzeug.serving import run_simple

from .. import migrate
from ..clock import utcnow
from ..demo import seed_demo
from ..extensions import db
from ..messaging.outbox import SendingWindow, sending_windows
from ..settings import Settings


@click.command("demo")
@with_appcontext
def demo_command() -> None:
    """Seed a demo study (idempotent) and print sign-in details and open patient links."""
    settings = current_app.config["PRO_SETTINGS"]
    if settings.is_production:
        raise click.ClickException("the demo cannot be seeded in production")
    if migrate.current_revision(db.engine) != migrate.head_revision():
        raise click.ClickException("the database is not up to date: run `pro-service db upgrade`")
    report = seed_demo(
        db.session,
        now=utcnow(),
        vault=current_app.extensions["vault"],
        schedule=current_app.extensions["schedule"],
        registry=current_app.extensions["instruments"],
        base_url=settings.public_base_url,
        missing_reasons=current_app.extensions["missing_reasons"],
    )
    db.session.commit()
    click.echo(
        "Demo study " + ("created." if report.created else "already there; nothing changed.")
    )
    click.echo(
        f"\nStaff sign-in: {settings.public_base_url}/staff/  password for all: {report.password}"
    )
    for email, role in report.users:
        click.echo(f"  {email:32} {role}")
    click.echo(
        "  (admins set up two-factor sign-in with an authenticator app at their first sign-in)"
    )
    click.echo("\nOpen patient links:")
    for link in report.links:
        click.echo(
            f"  {link.study_id:8} {link.language}  {link.timepoint:9} {link.status:12} {link.url}"
        )
    _echo_when_sms_go_out(settings)


def _echo_when_sms_go_out(settings: Settings) -> None:
    """Say when the queued SMS go out: outside a site's sending hours nothing is sent until
    they open, which looks like a fault on an evening's first try."""
    for line in sms_notice(settings, sending_windows(db.session, utcnow())):
        click.echo(line)


def sms_notice(settings: Settings, windows: list[SendingWindow]) -> list[str]:
    backend = (
        "the console backend writes each SMS to the scheduler's output as it is sent"
        if settings.sms_backend == "console"
        else "sent through Twilio"
    )
    lines = [f"\nSMS ({backend}):"]
    for w in windows:
        hours = f"{w.start:%H:%M}-{w.end:%H:%M} {w.time_zone}"
        if w.open_now:
            when = "open now: due SMS go out at the scheduler's next pass (within a minute)"
        else:
            when = f"closed now: the next SMS go out at {w.next_opening:%Y-%m-%d %H:%M}"
        lines.append(f"  {w.site_code:10} sending hours {hours}, {when}")
    if settings.env == "development":
        lines.append(
            f"  Every queued SMS with its text and link: {settings.public_base_url}/dev/outbox"
        )
    lines.append("  A nurse finds a patient's current link on the patient page (Show the link).")
    return lines


@click.command("dev")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@with_appcontext
def dev_command(host: str, port: int) -> None:
    """Run the web server and the scheduler process together (development)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def _stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    # Ctrl-C and `kill` stop both, however this was started: a process started in the
    # background (a CI runner, nohup, `make test &`) inherits SIGINT as ignored.
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    scheduler = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "pro_service", "scheduler"], env=os.environ.copy()
    )
    base = app.config["PRO_SETTINGS"].public_base_url
    click.echo(
        f"\nPRO Service is running at {base}/ : staff pages {base}/staff/ , patient links above."
        f"\nScheduler process pid {scheduler.pid}. Ctrl-C stops both."
    )
    _echo_when_sms_go_out(app.config["PRO_SETTINGS"])
    click.echo("")
    try:
        run_simple(host, port, app, use_reloader=False, threaded=True)
    except KeyboardInterrupt:
        click.echo("Stopping the web server and the scheduler process.")
    finally:
        scheduler.terminate()
        try:
            scheduler.wait(timeout=10)
        except subprocess.TimeoutExpired:
            scheduler.kill()
            scheduler.wait()
