"""Prometheus metrics at ``/metrics``: off unless ``PRO_METRICS_TOKEN`` is set, and then only
with that token (``Authorization: Bearer ...``). Nothing about a patient is exported: counts.

Read from the database at each scrape (the same figures whichever worker answers): SMS by
status, time points open, in progress and overdue (due date before today, UTC), and seconds
since the last scheduler pass. Kept by each web worker since it started: request durations per
page group. With several gunicorn workers a scrape sees the durations of the one worker that
answers it, so read them as a sample (the database figures are exact).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator

from flask import Blueprint, Flask, Response, abort, current_app, g, request
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from ..clock import utcnow
from ..extensions import db
from ..models import Assessment, OutboxMessage
from ..scheduler.jobs import last_heartbeat, last_pass_seconds
from ..scheduling.assessments import OPEN_STATES

bp = Blueprint("metrics", __name__)


class _DatabaseCollector(Collector):
    """Gauges read from the database when Prometheus scrapes."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        session = db.session
        now = utcnow()
        sms = GaugeMetricFamily(
            "pro_sms_messages", "SMS in the outbox by status", labels=["status"]
        )
        for status, count in session.execute(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        ):
            sms.add_metric([status], count)
        yield sms
        points = GaugeMetricFamily(
            "pro_timepoints", "Time points that accept answers, by state", labels=["state"]
        )
        counted = dict(
            session.execute(
                select(Assessment.status, func.count())
                .where(Assessment.status.in_(OPEN_STATES))
                .group_by(Assessment.status)
            ).all()
        )
        for status in OPEN_STATES:
            points.add_metric([status], counted.get(status, 0))
        overdue = session.scalar(
            select(func.count())
            .select_from(Assessment)
            .where(Assessment.status.in_(OPEN_STATES), Assessment.due_date < now.date())
        )
        points.add_metric(["overdue"], overdue or 0)
        yield points
        last = last_heartbeat(session)
        lag = GaugeMetricFamily(
            "pro_scheduler_last_pass_age_seconds",
            "Seconds since any scheduler process ran a pass (NaN: never)",
        )
        lag.add_metric([], float("nan") if last is None else (now - last).total_seconds())
        yield lag
        took = last_pass_seconds(session)
        duration = GaugeMetricFamily(
            "pro_scheduler_last_pass_duration_seconds",
            "How long the most recent scheduler pass (the windows job) took (NaN: not known)",
        )
        duration.add_metric([], float("nan") if took is None else took)
        yield duration


def register_metrics(app: Flask) -> None:
    """The endpoint and the request timer, when PRO_METRICS_TOKEN is set."""
    if app.config["PRO_SETTINGS"].metrics_token is None:
        return
    registry = CollectorRegistry()  # collectors are read at scrape time only
    registry.register(_DatabaseCollector())
    durations = Histogram(
        "pro_http_request_duration_seconds",
        "Time to answer a request, by page group (this worker, since it started)",
        labelnames=["group", "method"],
        registry=registry,
    )
    app.extensions["pro_metrics"] = registry

    @app.before_request
    def _start_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.get("metrics_started")
        if started is not None and request.blueprint != "metrics":
            group = request.blueprint or "other"
            durations.labels(group, request.method).observe(time.perf_counter() - started)
        return response

    app.register_blueprint(bp)


@bp.get("/metrics")
def metrics() -> Response:
    token = current_app.config["PRO_SETTINGS"].metrics_token
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not given or not hmac.compare_digest(given.encode(), token.encode()):
        abort(401)
    registry: CollectorRegistry = current_app.extensions["pro_metrics"]
    return Response(generate_latest(registry), mimetype="text/plain; version=0.0.4")
