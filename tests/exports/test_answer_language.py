"""The language column: the language of each instrument's answers, kept with its scores."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, select

from pro_service import migrate
from pro_service.answering.rescoring import rescore
from pro_service.answering.responses import complete_assessment, instruments_of, save_answers
from pro_service.audit import Actor
from pro_service.models import Assessment, Response, Score

WHEN = datetime(2026, 1, 20, 10, tzinfo=UTC)


def _switch_language_and_complete(app, session, assessment_id: int) -> None:
    """The patient (UPP-002, English) began in English (half the items), then answered every
    PAN26 item in Finnish and the last two C30 items in Swedish: the C30 ends with English and
    Swedish answers, Swedish the last given, English the first in language order."""
    registry = app.extensions["instruments"]
    assessment = session.get(Assessment, assessment_id)
    c30, pan26 = instruments_of(assessment, registry)
    save_answers(
        session, now=WHEN, assessment=assessment, instrument=pan26, language="fi",
        answers={n: 1 for n in pan26.items},
    )  # fmt: skip
    save_answers(
        session, now=WHEN, assessment=assessment, instrument=c30, language="sv",
        answers={29: 5, 30: 5},
    )  # fmt: skip
    assert complete_assessment(
        session, now=WHEN, assessment=assessment, registry=registry, language="en",
        actor=Actor("patient", str(assessment.patient_id)),
    )  # fmt: skip
    session.commit()


def _languages(session, assessment_id: int) -> dict[str, set[str | None]]:
    out: dict[str, set[str | None]] = {}
    for score in session.scalars(select(Score).where(Score.assessment_id == assessment_id)):
        out.setdefault(score.instrument_id, set()).add(score.language)
    return out


def test_a_patient_who_switched_language_gets_the_first_in_order_per_instrument(
    app, session, study, export, helpers
):
    assessment_id = study.in_progress_id  # UPP-002 m3, half answered in English
    _switch_language_and_complete(app, session, assessment_id)
    # Every PAN26 answer was overwritten in Finnish; the C30 has English and Swedish answers.
    answered = session.execute(
        select(Response.language).where(
            Response.assessment_id == assessment_id, Response.instrument_id == "qlq-c30"
        )
    ).scalars()
    assert set(answered) == {"en", "sv"}
    assert _languages(session, assessment_id) == {"qlq-c30": {"en"}, "qlq-pan26": {"fi"}}
    rows = [
        r
        for r in helpers.read_csv(export("long"))
        if (r["study_id"], r["timepoint"]) == ("UPP-002", "m3")
    ]
    assert {(r["instrument"], r["language"]) for r in rows} == {
        ("qlq-c30", "en"),
        ("qlq-pan26", "fi"),
    }
    upp_001 = [
        r for r in helpers.read_csv(export("long", name="all.csv")) if r["study_id"] == "UPP-001"
    ]
    assert upp_001
    assert {r["language"] for r in upp_001} == {"sv"}


def test_the_migration_fills_in_the_language_of_scores_stored_before_it(
    app, session, study, database_url
):
    _switch_language_and_complete(app, session, study.in_progress_id)
    before = {a_id: _languages(session, a_id) for a_id in study.assessment_ids.values()}
    before[study.in_progress_id] = _languages(session, study.in_progress_id)
    session.close()
    engine = app.extensions["pro_db"]["engine"]
    engine.dispose()
    migrate.downgrade(engine, "staff")
    migrate.upgrade(engine)
    engine.dispose()
    after = {a_id: _languages(session, a_id) for a_id in before}
    assert after == before
    assert before[study.in_progress_id] == {"qlq-c30": {"en"}, "qlq-pan26": {"fi"}}
    stored = [
        language
        for by_instrument in before.values()
        for s in by_instrument.values()
        for language in s
    ]
    assert None not in stored


def test_a_rescoring_gives_a_missing_score_the_same_language_as_the_completion(app, session, study):
    """Both ways of storing scores (a completion, ``pro-service rescore``) choose a switched
    language by the same rule: the first in language order."""
    _switch_language_and_complete(app, session, study.in_progress_id)
    session.execute(delete(Score).where(Score.assessment_id == study.in_progress_id))
    rescore(
        session,
        now=WHEN,
        actor=Actor.operator(),
        registry=app.extensions["instruments"],
    )
    session.commit()
    assert _languages(session, study.in_progress_id) == {"qlq-c30": {"en"}, "qlq-pan26": {"fi"}}
