from __future__ import annotations

import logging
import os
import signal
import sys

import click
from flask import current_app
from flask.cli import with_appcontext

from ..clock import utcnow
from ..scheduler.jobs import JOBS, dispatch_stop, run_job

log = logging.getLogger(__name__)

#: The twilio library logs every request and response at INFO (about 11 lines per SMS, a fifth
#: of dispatch time at the 09:00 blast); the scheduler keeps only its warnings and errors.
PROVIDER_LOGGERS = ("twilio",)


def quiet_provider_logs() -> None:
    """Only warnings and errors from the SMS provider's library in a process that dispatches."""
    for name in PROVIDER_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def lower_priority(niceness: int) -> None:
    """Lower this process's CPU priority by ``niceness`` (PRO_SCHEDULER_NICENESS): on a server
    shared with the web workers, the patient pages come first while the scheduler sends."""
    if niceness <= 0:
        return
    try:
        os.nice(niceness)
    except OSError as exc:  # not on every platform; the scheduler still works at full priority
        log.warning("could not lower the scheduler's CPU priority: %s", exc)


#: The signals that stop the scheduler process (systemd's stop, Ctrl-C).
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


@click.command("scheduler")
@with_appcontext
def scheduler_command() -> None:
    """Run the scheduler process (APScheduler): the periodic jobs, until stopped."""
    from apscheduler.schedulers.background import BackgroundScheduler

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    quiet_provider_logs()
    lower_priority(app.config["PRO_SETTINGS"].scheduler_niceness)
    # The stop signals are taken by this thread alone, with sigwait below, never by a handler:
    # a handler could run while this thread holds a lock that stopping needs (a deadlock), and
    # the job threads, started after this, inherit the blocked signals.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    scheduler = BackgroundScheduler(timezone="UTC")
    for job in JOBS.values():
        scheduler.add_job(
            run_job,
            trigger="interval",
            seconds=job.interval_seconds,
            args=(app, job.name),
            id=job.name,
            name=job.name,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=job.interval_seconds,
            next_run_time=utcnow(),
        )
    scheduler.start()
    click.echo(f"Scheduler running jobs: {', '.join(JOBS)}", err=True)
    signum = signal.sigwait(STOP_SIGNALS)
    # A second signal while stopping (a second Ctrl-C) now ends the process at once.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    log.info("scheduler stopping (signal %s)", signum)
    dispatch_stop(app).set()  # a running dispatch finishes its calls in flight and returns
    scheduler.shutdown(wait=True)


@click.group("jobs")
def jobs_group() -> None:
    """Run the scheduler's jobs by hand."""


@jobs_group.command("list")
def list_command() -> None:
    """List the jobs."""
    for job in JOBS.values():
        first_line = job.doc.strip().splitlines()[0] if job.doc.strip() else ""
        click.echo(f"{job.name:12} every {job.interval_seconds:>4}s  {first_line}")


@jobs_group.command("run")
@click.argument("name")
@with_appcontext
def run_command(name: str) -> None:
    """Run one job once, or `all` to run every job once in order."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    quiet_provider_logs()
    lower_priority(app.config["PRO_SETTINGS"].scheduler_niceness)
    names = list(JOBS) if name == "all" else [name]
    for job_name in names:
        if job_name not in JOBS:
            click.echo(f"Unknown job {job_name!r}; jobs are: {', '.join(JOBS)}, all", err=True)
            sys.exit(2)
        click.echo(f"{job_name}: {run_job(app, job_name)}")
