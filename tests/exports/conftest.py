"""A small study with completed time points, made through the services as in real use."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

import pytest
from sqlalchemy import select

from pro_service.answering.responses import complete_assessment, instruments_of, save_answers
from pro_service.audit import Actor
from pro_service.instruments import score_instrument
from pro_service.models import Assessment, AssessmentStatus, Response
from pro_service.scheduling.assessments import issue_token

from builders import build_patient, build_site

# Fictional numbers (Sweden's range for drama, a Finnish test range), in the forms a nurse types.
PHONES = {
    "UPP-001": ("070-174 06 10", "+46701740610"),
    "UPP-002": ("070-174 06 11", "+46701740611"),
    "HEL-001": ("+358 40 123 4567", "+358401234567"),
}


@dataclass
class Study:
    sites: dict[str, object]
    assessment_ids: dict[tuple[str, str], int]  # (study id, time point) -> assessment id
    in_progress_id: int
    phones: dict[str, tuple[str, str]]  # study id -> (as typed, E.164)

    def site_id(self, code: str) -> int:
        return self.sites[code].id  # type: ignore[attr-defined]


def _answer(session, app, assessment, *, now, language, rng, fraction):
    registry = app.extensions["instruments"]
    assessment.status = AssessmentStatus.OPEN.value
    assessment.opened_at = now
    issue_token(assessment, app.extensions["vault"])
    for instrument in instruments_of(assessment, registry):
        answers = {
            number: rng.choice(item.codes)
            for number, item in instrument.items.items()
            if rng.random() < fraction
        }
        save_answers(
            session,
            now=now,
            assessment=assessment,
            instrument=instrument,
            language=language,
            answers=answers,
        )


@pytest.fixture
def study(app, session, now) -> Study:
    rng = random.Random(6)
    sites = {
        "SE-UPP": build_site(session, now=now, code="SE-UPP"),
        "FI-HEL": build_site(session, now=now, code="FI-HEL"),
    }
    plan = [
        # study id, site, language, surgery, completed time points (answered fraction)
        ("UPP-001", "SE-UPP", "sv", date(2025, 6, 2), {"baseline": 1.0, "preop": 1.0, "m3": 1.0}),
        ("UPP-002", "SE-UPP", "en", date(2025, 6, 9), {"baseline": 0.45, "preop": 0.9}),
        ("HEL-001", "FI-HEL", "fi", None, {"baseline": 0.8}),
    ]
    ids: dict[tuple[str, str], int] = {}
    in_progress_id = 0
    for study_id, site_code, language, surgery, completed in plan:
        patient = build_patient(
            app,
            session,
            now=now,
            actor=Actor.staff(1),
            site=sites[site_code],
            study_id=study_id,
            phone=PHONES[study_id][0],
            language=language,
            inclusion_date=date(2025, 5, 5),
            surgery_date=surgery,
        )
        for assessment in patient.assessments:
            when = datetime.combine(assessment.due_date, time(10), tzinfo=UTC)  # on the due day
            if assessment.timepoint in completed:
                _answer(
                    session,
                    app,
                    assessment,
                    now=when,
                    language=language,
                    rng=rng,
                    fraction=completed[assessment.timepoint],
                )
                assert complete_assessment(
                    session,
                    now=when,
                    assessment=assessment,
                    registry=app.extensions["instruments"],
                    language=language,
                    actor=Actor("patient", str(patient.id)),
                )
                ids[(study_id, assessment.timepoint)] = assessment.id
            elif study_id == "UPP-002" and assessment.timepoint == "m3":
                _answer(
                    session, app, assessment, now=when, language=language, rng=rng, fraction=0.5
                )
                in_progress_id = assessment.id
    session.commit()
    return Study(sites, ids, in_progress_id, PHONES)


def engine_scores(app, session, assessment_id: int) -> dict[str, float | None]:
    """What the scoring engine gives for the stored answers of one assessment."""
    registry = app.extensions["instruments"]
    assessment = session.get(Assessment, assessment_id)
    answers = dict(
        session.execute(
            select(Response.item_number, Response.code).where(
                Response.assessment_id == assessment_id
            )
        ).all()
    )
    out: dict[str, float | None] = {}
    for instrument in instruments_of(assessment, registry):
        for code, score in score_instrument(instrument, answers).items():
            out[code] = score.value
    return out


def stored_answers(session, assessment_id: int) -> dict[int, int]:
    return dict(
        session.execute(
            select(Response.item_number, Response.code).where(
                Response.assessment_id == assessment_id
            )
        ).all()
    )


@pytest.fixture
def export(app, session, tmp_path):
    """Run an export through the engine as the CLI does; returns the written path."""
    from pro_service.exports import ExportFilters, write_export

    def _export(fmt: str, name: str | None = None, allowed_site_ids=None, **filters):
        # Most tests here check the scores and answers of completed time points; the ones of
        # every expected time point (the default) pass completed_only=False.
        filters.setdefault("completed_only", True)
        path = tmp_path / (name or f"export.{fmt}")
        write_export(
            session,
            fmt=fmt,
            path=path,
            filters=ExportFilters(**filters),
            registry=app.extensions["instruments"],
            schedule=app.extensions["schedule"],
            base_url="https://pro.example.test",
            now=datetime(2026, 11, 28, 12, 0, tzinfo=UTC),
            allowed_site_ids=allowed_site_ids,
        )
        return path

    return _export


def read_csv(path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def helpers(app, session):
    """``helpers.engine_scores(id)``, ``helpers.answers(id)``, ``helpers.read_csv(path)``."""

    class Helpers:
        @staticmethod
        def engine_scores(assessment_id: int) -> dict[str, float | None]:
            return engine_scores(app, session, assessment_id)

        @staticmethod
        def answers(assessment_id: int) -> dict[int, int]:
            return stored_answers(session, assessment_id)

        read_csv = staticmethod(read_csv)

    return Helpers
