"""Liveness and readiness for a load balancer or monitoring.

``/healthz``: the process answers and reaches its database (cheap; for restarts).
``/readyz``: ready to serve patients: the database at the newest migration and a scheduler pass
within the last few minutes (otherwise no SMS goes out); 503 naming what is not ready. Neither
says anything about patients.
"""

from __future__ import annotations

import functools

from flask import Blueprint, redirect, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from .. import migrate
from ..clock import utcnow
from ..extensions import db
from ..scheduler.jobs import last_heartbeat

bp = Blueprint("health", __name__)

#: A scheduler silent for longer than this makes the service not ready (as ``pro-service check``).
SCHEDULER_SILENT_SECONDS = 300


_newest_revision = functools.cache(migrate.head_revision)  # read from the files once


@bp.get("/healthz")
def healthz() -> tuple[dict[str, str], int]:
    db.session.execute(text("SELECT 1"))
    return {"status": "ok"}, 200


@bp.get("/readyz")
def readyz() -> tuple[dict[str, object], int]:
    problems: list[str] = []
    try:
        current = migrate.current_revision(db.engine)
    except SQLAlchemyError:
        return {"status": "not ready", "problems": ["database unreachable"]}, 503
    if current != _newest_revision():
        problems.append(f"database at migration {current}, not the newest")
    last = last_heartbeat(db.session)
    silent = None if last is None else int((utcnow() - last).total_seconds())
    if silent is None or silent > SCHEDULER_SILENT_SECONDS:
        problems.append(
            "no scheduler pass yet" if silent is None else f"no scheduler pass for {silent} s"
        )
    body: dict[str, object] = {
        "status": "not ready" if problems else "ready",
        "scheduler_last_pass_seconds_ago": silent,
    }
    if problems:
        body["problems"] = problems
        return body, 503
    return body, 200


@bp.get("/")
def root() -> ResponseReturnValue:
    """The service's address leads staff to their pages; patients always come by their link."""
    return redirect(url_for("staff.index"))
