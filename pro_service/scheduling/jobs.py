"""The scheduler's fixed periodic jobs. Each runs in its own app context and commits once.

The scheduler process (``pro-service scheduler``) runs them on intervals; ``pro-service jobs run``
runs them once, for operators, cron and tests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, current_app

from ..clock import utcnow
from ..extensions import db
from ..services.assessments import update_windows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    interval_seconds: int
    func: Callable[[], str]
    doc: str


def job_windows() -> str:
    """Open windows that have started and expire those that have ended.

    Idempotent: a window opens or expires once because the status changes in the same UPDATE
    transaction (rows are locked with SKIP LOCKED on PostgreSQL), so running it twice, or in two
    processes, changes nothing more.
    """
    session = db.session
    changes = update_windows(session, now=utcnow(), vault=current_app.extensions["vault"])
    session.commit()
    return f"opened {len(changes.opened)}, expired {len(changes.expired)}"


JOBS: dict[str, Job] = {
    job.name: job for job in (Job("windows", 60, job_windows, job_windows.__doc__ or ""),)
}


def run_job(app: Flask, name: str) -> str:
    job = JOBS[name]
    with app.app_context():
        try:
            summary = job.func()
        except Exception:
            db.session.rollback()
            log.exception("job %s failed", name)
            raise
    log.info("job %s: %s", name, summary)
    return summary
