"""Liveness and readiness: /healthz answers while the database does; /readyz also needs the
database at the newest migration and a recent scheduler pass, and says what is missing."""

from __future__ import annotations

from datetime import timedelta

import time_machine

from pro_service.clock import utcnow
from pro_service.scheduler.jobs import run_job


def test_ready_only_while_a_scheduler_runs_its_passes(app, client):
    assert client.get("/healthz").status_code == 200
    before = client.get("/readyz")
    assert before.status_code == 503
    assert before.json == {
        "status": "not ready",
        "scheduler_last_pass_seconds_ago": None,
        "problems": ["no scheduler pass yet"],
    }
    # The clock held still around the pass, so that "10 minutes later" is exactly 600 s after
    # it however long the pass itself takes on a busy machine.
    now = utcnow()
    with time_machine.travel(now, tick=False):
        run_job(app, "windows")
        ready = client.get("/readyz")
    assert ready.status_code == 200, ready.json
    assert ready.json["status"] == "ready"
    with time_machine.travel(now + timedelta(minutes=10), tick=False):
        stale = client.get("/readyz")
        assert stale.status_code == 503
        assert stale.json["problems"] == ["no scheduler pass for 600 s"]
        assert client.get("/healthz").status_code == 200  # alive, though not ready
