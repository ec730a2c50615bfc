"""Fixtures for the patient pages: an open assessment with a working link."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select

from pro_service.audit import Actor
from pro_service.clock import utcnow
from pro_service.extensions import db
from pro_service.models import Site
from pro_service.scheduling.assessments import current_token, local_today, update_windows

from .helpers import Link
from builders import build_patient, build_site


@pytest.fixture
def app_overrides(app_overrides: dict[str, object]) -> dict[str, object]:
    # Tests walk through many pages quickly; the limit itself has its own tests.
    return {**app_overrides, "link_rate_limit": 10_000}


_counter = iter(range(1, 10_000))


@pytest.fixture
def make_link(app) -> Callable[..., Link]:  # type: ignore[no-untyped-def]
    """Register a patient whose baseline time point is open today; return its link."""

    def make(language: str = "sv", instruments: list[str] | None = None) -> Link:
        with app.app_context():
            session = db.session
            now = utcnow()
            actor = Actor.operator("tests")
            site = session.scalar(select(Site).where(Site.code == "TEST"))
            if site is None:
                site = build_site(session, now=now, actor=actor, code="TEST")
            n = next(_counter)
            patient = build_patient(
                app,
                session,
                now=now,
                actor=actor,
                site=site,
                study_id=f"T-{n:04d}",
                phone=None,
                language=language,
                inclusion_date=local_today(site, now),
            )
            baseline = next(a for a in patient.assessments if a.timepoint == "baseline")
            if instruments is not None:
                baseline.instruments = instruments
            update_windows(session, now=now, vault=app.extensions["vault"])
            token = current_token(baseline, app.extensions["vault"])
            assert token is not None
            session.commit()
            return Link(token=token, assessment_id=baseline.id, patient_id=patient.id)

    return make


@pytest.fixture
def link(make_link: Callable[..., Link]) -> Link:
    return make_link()
