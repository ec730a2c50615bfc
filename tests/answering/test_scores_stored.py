"""The scores stored at completion, as the same session then sees them."""

from __future__ import annotations

import pytest

from pro_service.answering.responses import save_answers, score_partial
from pro_service.clock import utcnow
from pro_service.extensions import db
from pro_service.instruments import ALGORITHM_VERSION, score_instrument
from pro_service.models import Assessment


def test_scores_stored_replace_those_the_session_had_loaded(app, link):
    """The scores are inserted past the unit of work; an ``assessment.scores`` loaded before
    they were computed (here for a time point that closed partly answered) is reloaded, so
    that the same session shows the new scores, not none."""
    registry = app.extensions["instruments"]
    with app.app_context():
        session = db.session
        assessment = session.get_one(Assessment, link.assessment_id)
        instrument = registry.get("qlq-c30", "3.0")
        now = utcnow()
        save_answers(
            session,
            now=now,
            assessment=assessment,
            instrument=instrument,
            language="sv",
            answers={8: 4, 28: 2},
        )
        assert assessment.scores == []  # loaded, before the scoring
        scored = score_partial(session, now=now, assessment=assessment, registry=registry)
        assert {score.code: score.value for score in scored}["DY"] == 100.0
        seen = {score.scale: score.value for score in assessment.scores}
        session.commit()

    assert seen["DY"] == 100.0  # q8 = 4, the highest code of a symptom item
    assert seen["FI"] == pytest.approx(100 / 3)
    assert seen["QL2"] is None
    with app.app_context():
        session = db.session
        assessment = session.get_one(Assessment, link.assessment_id)
        stored = assessment.scores
        assert {score.scale: score.value for score in stored} == seen
        assert all(score.computed_at is not None for score in stored)
        # Every column of every row as computed: the scores are inserted past the ORM (on
        # PostgreSQL as one INSERT of a JSON document), so each one is checked as stored, its
        # value to the last bit.
        pan26 = registry.get("qlq-pan26", "1.0")
        expected = {
            code: (instrument.id, instrument.version, result, "sv")
            for code, result in score_instrument(instrument, {8: 4, 28: 2}).items()
        }
        expected.update(  # nothing answered: no language
            (code, (pan26.id, pan26.version, result, None))
            for code, result in score_instrument(pan26, {}).items()
        )
        assert {
            score.scale: (
                score.instrument_id,
                score.instrument_version,
                score.value,
                score.items_in_scale,
                score.items_answered,
                score.language,
                score.algorithm_version,
            )
            for score in stored
        } == {
            code: (
                instrument_id,
                version,
                result.value,
                result.items_in_scale,
                result.items_answered,
                language,
                ALGORITHM_VERSION,
            )
            for code, (instrument_id, version, result, language) in expected.items()
        }

        # Scored again (a rescoring): the old rows' objects leave the session, the new show.
        save_answers(
            session,
            now=utcnow(),
            assessment=assessment,
            instrument=registry.get("qlq-c30", "3.0"),
            language="sv",
            answers={8: 1},
        )
        score_partial(session, now=utcnow(), assessment=assessment, registry=registry)
        assert not any(score in session for score in stored)
        assert {score.scale: score.value for score in assessment.scores}["DY"] == 0.0
        session.commit()
