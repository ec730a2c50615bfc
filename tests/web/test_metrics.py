"""Prometheus metrics: absent unless a token is configured, then only with that token; the
figures are counts from the database and request durations, nothing about a patient."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pro_service import create_app
from pro_service.scheduler.jobs import run_job
from pro_service.settings import ConfigurationError, load_settings

TOKEN = "m" * 40


@pytest.fixture
def metered(app_overrides):
    app = create_app({**app_overrides, "metrics_token": TOKEN})
    yield app
    app.extensions["pro_db"]["engine"].dispose()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_without_a_token_there_is_no_metrics_page(client):
    assert client.get("/metrics").status_code == 404


def test_the_token_is_required_and_the_figures_come_from_the_database(
    metered, staff_study, make_patient
):
    client = metered.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    run_job(metered, "windows")
    client.get("/healthz")
    page = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert page.status_code == 200
    samples = _samples(page.get_data(as_text=True))
    assert samples[("pro_timepoints", (("state", "open"),))] >= 1  # staff_study's open ones
    assert ("pro_timepoints", (("state", "overdue"),)) in samples
    assert 0 <= samples[("pro_scheduler_last_pass_age_seconds", ())] < 60
    assert 0 < samples[("pro_scheduler_last_pass_duration_seconds", ())] < 60
    count = samples[
        (
            "pro_http_request_duration_seconds_count",
            (("group", "health"), ("method", "GET")),
        )
    ]
    assert count >= 1
    text = page.get_data(as_text=True)
    assert "UPP-" not in text and "+46" not in text  # counts only


def test_a_short_token_is_refused_at_start_up():
    with pytest.raises(ConfigurationError, match="PRO_METRICS_TOKEN must be at least 32"):
        load_settings({"PRO_METRICS_TOKEN": "short"})
