from __future__ import annotations

import logging
import signal
import sys

import click
from flask import current_app
from flask.cli import with_appcontext

from ..clock import utcnow
from ..scheduler.jobs import JOBS, run_job

log = logging.getLogger(__name__)


@click.command("scheduler")
@with_appcontext
def scheduler_command() -> None:
    """Run the scheduler process (APScheduler): the periodic jobs, until stopped."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    scheduler = BlockingScheduler(timezone="UTC")
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

    def _stop(signum: int, _frame: object) -> None:
        log.info("scheduler stopping (signal %s)", signum)
        scheduler.shutdown(wait=True)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    click.echo(f"Scheduler running jobs: {', '.join(JOBS)}", err=True)
    scheduler.start()


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
    names = list(JOBS) if name == "all" else [name]
    for job_name in names:
        if job_name not in JOBS:
            click.echo(f"Unknown job {job_name!r}; jobs are: {', '.join(JOBS)}, all", err=True)
            sys.exit(2)
        click.echo(f"{job_name}: {run_job(app, job_name)}")
