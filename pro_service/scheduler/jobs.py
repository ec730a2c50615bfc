"""The scheduler's fixed periodic jobs. Each runs in its own app context and commits.

The scheduler process (``pro-service scheduler``) runs them on intervals; ``pro-service jobs run``
runs one once, or ``all`` of them once in this order: windows, invitations, reminders,
reconcile, dispatch. Every job is safe to run in two processes at once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Flask, current_app
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from ..answering.responses import score_partial
from ..clock import utcnow
from ..extensions import db
from ..messaging.backends import SmsBackend, make_backend
from ..messaging.dispatch import Dispatcher, DispatchSummary, reconcile_stuck
from ..messaging.dispatch_pool import RateLimitPause, dispatch_concurrently
from ..messaging.outbox import queue_invitations, queue_reminders
from ..models import SchedulerHeartbeat
from ..patients.follow_up import complete_finished_follow_ups
from ..scheduling.assessments import update_windows

log = logging.getLogger(__name__)

# One reconciliation run stops taking new messages after this long (the next run continues).
RECONCILE_RUN_SECONDS = 50.0


@dataclass(frozen=True)
class Job:
    name: str
    interval_seconds: int
    func: Callable[[], str]
    doc: str


def sms_backend(app: Flask) -> SmsBackend:
    """The app's SMS backend, made on first use (web workers that never send never make one)."""
    backend: SmsBackend | None = app.extensions.get("sms_backend")
    if backend is None:
        backend = make_backend(app.config["PRO_SETTINGS"])
        app.extensions["sms_backend"] = backend
    return backend


def worker_id(app: Flask) -> str:
    """This process's name in claims and heartbeats: host, pid and a random part."""
    worker: str | None = app.extensions.get("sms_worker_id")
    if worker is None:
        worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        app.extensions["sms_worker_id"] = worker
    return worker


def dispatcher(app: Flask) -> Dispatcher:
    worker = worker_id(app)
    return Dispatcher(
        backend=sms_backend(app),
        texts=app.extensions["message_texts"],
        vault=app.extensions["vault"],
        base_url=app.config["PRO_SETTINGS"].public_base_url,
        worker=worker,
        lease=timedelta(seconds=app.config["PRO_SETTINGS"].sms_claim_lease_seconds),
    )


def job_windows() -> str:
    """Open windows that have started and close those that have ended (partial ones, with
    answers, are scored by the half rule in the same transaction).

    Idempotent: a window opens or expires once because the status changes in the same UPDATE
    transaction (rows are locked with SKIP LOCKED on PostgreSQL), so running it twice, or in two
    processes, changes nothing more.
    """
    session = db.session
    now = utcnow()
    changes = update_windows(session, now=now, vault=current_app.extensions["vault"])
    registry = current_app.extensions["instruments"]
    for assessment in changes.partial:
        score_partial(session, now=now, assessment=assessment, registry=registry)
    session.commit()
    return (
        f"opened {len(changes.opened)}, expired {len(changes.expired)}, "
        f"partial {len(changes.partial)}"
    )


def job_follow_up() -> str:
    """Mark "follow-up complete" the active patients with every time point created and none
    left to answer (audited; the board filters by it). Once per patient, in any number of
    scheduler processes."""
    session = db.session
    done = complete_finished_follow_ups(
        session, now=utcnow(), schedule=current_app.extensions["schedule"]
    )
    session.commit()
    return f"follow-up complete {done}"


def job_invitations() -> str:
    """Queue an invitation SMS for every open time point whose link was not announced yet.

    Exactly once per link: the outbox row and the assessment's ``invitation_queued_at`` are
    written in one transaction on locked rows (SKIP LOCKED), after the commit that opened the
    window. Opted-out and inactive patients get none.
    """
    session = db.session
    result = queue_invitations(session, now=utcnow(), schedule=current_app.extensions["schedule"])
    session.commit()
    return f"queued {result.queued}, not for opted-out/inactive {result.skipped}"


def job_reminders() -> str:
    """Queue the reminders due today (site-local) for time points still open or in progress.

    Exactly once per reminder day: ``next_reminder_on`` advances in the same transaction as the
    outbox row. Never after completion or window close (both clear it; dispatch re-checks).
    """
    session = db.session
    result = queue_reminders(session, now=utcnow(), schedule=current_app.extensions["schedule"])
    session.commit()
    return f"queued {result.queued}, not for opted-out/inactive {result.skipped}"


def job_reconcile() -> str:
    """Settle messages left 'sending' by a crash or a provider timeout, by asking the provider.

    At-least-once towards the provider's list, at-most-once towards the patient: a message is
    resent only after the provider says it does not have it.
    """
    total = DispatchSummary()
    work = dispatcher(current_app)
    started = time.monotonic()
    while time.monotonic() - started < RECONCILE_RUN_SECONDS:
        summary = reconcile_stuck(db.session, work, now=utcnow())
        total.add(summary)
        if summary.claimed == 0:
            break
    return str(total)


def dispatch_stop(app: Flask) -> threading.Event:
    """Set to make a running dispatch finish its calls in flight and return (scheduler stop)."""
    stop: threading.Event = app.extensions.setdefault("sms_dispatch_stop", threading.Event())
    return stop


def job_dispatch() -> str:
    """Send due messages inside each site's sending hours: claim atomically, then send.

    Up to PRO_SMS_POOL_SIZE messages in flight at once; claims continuously while messages are
    due (one run lasts until none are), claiming only as many as there are free senders. After a
    429 the process pauses claiming for Twilio's Retry-After.

    At-most-once per claim (the claim is committed before the provider call; a crash leaves the
    message 'sending' for reconciliation), at-least-once overall (reconciliation resends what the
    provider does not have): together, exactly once.
    """
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    pause: RateLimitPause = app.extensions.setdefault("sms_rate_limit_pause", RateLimitPause())
    make_session = sessionmaker(bind=db.engine, expire_on_commit=False)
    summary = dispatch_concurrently(
        make_session,
        dispatcher(app),
        clock=utcnow,
        size=app.config["PRO_SETTINGS"].sms_pool_size,
        pause=pause,
        stop=dispatch_stop(app),
    )
    return str(summary)


JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job("windows", 60, job_windows, job_windows.__doc__ or ""),
        Job("invitations", 60, job_invitations, job_invitations.__doc__ or ""),
        Job("reminders", 300, job_reminders, job_reminders.__doc__ or ""),
        Job("reconcile", 60, job_reconcile, job_reconcile.__doc__ or ""),
        Job("dispatch", 15, job_dispatch, job_dispatch.__doc__ or ""),
        Job("follow_up", 900, job_follow_up, job_follow_up.__doc__ or ""),
    )
}


#: The job whose every run records the process's heartbeat (every minute, in every pass).
HEARTBEAT_JOB = "windows"
#: Heartbeats of processes gone longer than this are forgotten.
HEARTBEAT_KEPT = timedelta(days=7)


def record_heartbeat(
    session: Session, *, worker: str, job: str, now: datetime, seconds: float | None = None
) -> None:
    """Note that ``worker`` ran ``job`` at ``now``, taking ``seconds`` (for ``pro-service
    check``, ``/readyz`` and the metrics)."""
    row = session.get(SchedulerHeartbeat, worker)
    if row is None:
        session.add(
            SchedulerHeartbeat(
                worker=worker, last_job=job, last_pass_at=now, last_pass_seconds=seconds
            )
        )
        session.execute(
            delete(SchedulerHeartbeat).where(SchedulerHeartbeat.last_pass_at < now - HEARTBEAT_KEPT)
        )
    else:
        row.last_job, row.last_pass_at, row.last_pass_seconds = job, now, seconds


def last_pass_seconds(session: Session) -> float | None:
    """How long the most recent scheduler pass took (None: not known)."""
    return session.scalar(
        select(SchedulerHeartbeat.last_pass_seconds)
        .order_by(SchedulerHeartbeat.last_pass_at.desc())
        .limit(1)
    )


def last_heartbeat(session: Session) -> datetime | None:
    """When any scheduler last ran a pass."""
    return session.scalar(select(func.max(SchedulerHeartbeat.last_pass_at)))


def run_job(app: Flask, name: str) -> str:
    job = JOBS[name]
    with app.app_context():
        try:
            started = time.perf_counter()
            summary = job.func()
            if name == HEARTBEAT_JOB:
                record_heartbeat(
                    db.session,
                    worker=worker_id(app),
                    job=name,
                    now=utcnow(),
                    seconds=time.perf_counter() - started,
                )
                db.session.commit()
        except Exception:
            db.session.rollback()
            log.exception("job %s failed", name)
            raise
    log.info("job %s: %s", name, summary)
    return summary
