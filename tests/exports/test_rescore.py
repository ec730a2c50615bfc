"""``pro-service rescore``: stored scores recomputed from stored answers, counted, audited."""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import select, update

from pro_service import create_app
from pro_service.models import AuditEvent, Score
from pro_service.settings import PROJECT_ROOT


def _scores(session) -> dict[tuple[int, str], tuple[float | None, str]]:
    session.expire_all()
    return {
        (s.assessment_id, s.scale): (s.value, s.algorithm_version)
        for s in session.scalars(select(Score))
    }


def test_rescore_repairs_changed_scores_reports_the_count_and_is_idempotent(
    runner, session, study, helpers
):
    upp_baseline = study.assessment_ids[("UPP-001", "baseline")]
    hel_baseline = study.assessment_ids[("HEL-001", "baseline")]
    session.execute(
        update(Score)
        .where(Score.assessment_id == upp_baseline, Score.scale.in_(["PF2", "FA"]))
        .values(value=1.5, algorithm_version="eortc-manual-3rd-ed/0")
    )
    session.execute(
        update(Score)
        .where(Score.assessment_id == hel_baseline, Score.scale == "QL2")
        .values(value=None)
    )
    session.execute(
        update(Score)
        .where(Score.assessment_id == hel_baseline, Score.scale == "EF")
        .values(algorithm_version="eortc-manual-3rd-ed/0")
    )
    session.commit()

    result = runner.invoke(args=["rescore", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("3 scores would change in 2 assessments (6 completed")
    assert _scores(session)[(upp_baseline, "PF2")][0] == 1.5  # dry run changed nothing

    result = runner.invoke(args=["rescore"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("3 scores changed in 2 assessments (6 completed")
    assert "1 unchanged scores were stamped with the current algorithm" in result.output
    stored = _scores(session)
    for assessment_id in study.assessment_ids.values():
        for scale, value in helpers.engine_scores(assessment_id).items():
            assert stored[(assessment_id, scale)] == (value, "eortc-manual-3rd-ed/1")
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "scores.rescored")).one()
    assert event.after["scores_changed"] == 3 and event.after["assessments_changed"] == 2

    again = runner.invoke(args=["rescore"])
    assert again.output.startswith("0 scores changed in 0 assessments")
    assert _scores(session) == stored


def test_rescore_follows_a_changed_scale_direction_in_the_instrument_file(
    app_overrides, session, study, tmp_path
):
    folder = tmp_path / "questionnaires"
    shutil.copytree(PROJECT_ROOT / "questionnaires", folder)
    pan26 = folder / "qlq-pan26" / "1.0.yaml"
    text = pan26.read_text(encoding="utf-8")
    before = "    type: functional\n    transform: symptom\n    items: [53, 54]"
    assert before in text
    pan26.write_text(text.replace(before, before.replace("symptom", "functional")), "utf-8")
    old = {k: v for k, v in _scores(session).items() if k[1] == "PAN_SA"}
    expected_changes = sum(1 for v, _ in old.values() if v is not None and v != 50.0)
    assert expected_changes > 0

    changed_app = create_app(
        {
            **app_overrides,
            "questionnaire_dir": folder,
            "schedule_file": folder / "schedules" / "scanpan.yaml",
        }
    )
    try:
        with changed_app.app_context():  # the session fixture holds the first app's context
            result = changed_app.test_cli_runner().invoke(args=["rescore"])
    finally:
        changed_app.extensions["pro_db"]["engine"].dispose()
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{expected_changes} scores changed in {expected_changes} ")
    new = _scores(session)
    for key, (value, _) in old.items():
        assert new[key][0] == (None if value is None else pytest.approx(100 - value, abs=1e-9))
