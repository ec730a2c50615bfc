"""Missed time points carry a reason from questionnaires/missing-reasons.yaml (audited)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from pro_service.answering.missing import (
    MissingReasonError,
    MissingReasonFileError,
    load_missing_reasons,
    proposed_reason,
    record_missing_reason,
)
from pro_service.audit import Actor
from pro_service.models import (
    Assessment,
    AssessmentStatus,
    AuditEvent,
    MessageStatus,
    OutboxMessage,
)
from pro_service.scheduling.assessments import update_windows

REASON_FILE = Path(__file__).parents[2] / "questionnaires" / "missing-reasons.yaml"
NURSE = Actor.staff(7)


def test_the_shipped_list_has_every_standard_reason_in_three_languages():
    reasons = load_missing_reasons(REASON_FILE)
    assert reasons.codes == (
        "too-ill",
        "declined",
        "no-response",
        "not-delivered",
        "technical",
        "not-sent",
        "in-hospital",
        "died",
        "other",
    )
    assert [r.code for r in reasons.reasons if r.needs_text] == ["other"]
    assert reasons.get("too-ill").label("fi") == "Liian sairas vastaamaan"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("too-ill: {sv: a, fi: b}\n", "too-ill.en: missing or empty"),
        ("Too_Ill: {sv: a, fi: b, en: c}\n", "Too_Ill: a code is lower-case"),
        ("other: {sv: a, fi: b, en: c, text: maybe}\n", "other.text: the only value"),
        ("other: {sv: a, fi: b, en: c, de: d}\n", "other.de: unknown key"),
        ("other: {sv: a, fi: b, en: c}\n", "not-delivered: the service proposes"),
        ("- a\n", "(top level): must map"),
        ("a: [\n", "(file): not valid YAML"),
    ],
)
def test_a_bad_reason_file_is_refused_naming_the_field(tmp_path, content, problem):
    path = tmp_path / "missing-reasons.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(
        MissingReasonFileError, match=problem.replace("(", r"\(").replace(")", r"\)")
    ):
        load_missing_reasons(path)


def test_start_up_refuses_a_broken_reason_file(tmp_path, app_overrides):
    import shutil

    from pro_service import create_app

    questionnaires = tmp_path / "questionnaires"
    shutil.copytree(REASON_FILE.parent, questionnaires)
    (questionnaires / "missing-reasons.yaml").write_text("died: {sv: a}\n", encoding="utf-8")
    with pytest.raises(MissingReasonFileError, match="died.fi: missing or empty"):
        create_app({**app_overrides, "questionnaire_dir": questionnaires})


def _missed_baseline(app, session, make_site, make_patient):
    """A patient included on 16 March whose baseline window (14 days) closed unanswered."""
    patient = make_patient(
        make_site(), inclusion_date=date(2026, 3, 16), surgery_date=date(2026, 5, 4)
    )
    later = datetime(2026, 4, 2, 10, 0, tzinfo=UTC)
    update_windows(session, now=later, vault=app.extensions["vault"])
    baseline = session.scalar(
        select(Assessment).where(Assessment.patient_id == patient.id).order_by(Assessment.due_date)
    )
    assert baseline.status == AssessmentStatus.EXPIRED.value
    return baseline, later


def test_a_nurse_records_why_a_time_point_was_missed_and_it_is_audited(
    app, session, make_site, make_patient
):
    baseline, later = _missed_baseline(app, session, make_site, make_patient)
    reasons = app.extensions["missing_reasons"]
    record_missing_reason(
        session, now=later, actor=NURSE, reasons=reasons, assessment=baseline, code="too-ill"
    )
    session.commit()
    assert (baseline.missing_reason, baseline.missing_reason_text) == ("too-ill", None)
    assert baseline.missing_reason_by == "staff:7"
    event = session.scalar(
        select(AuditEvent).where(AuditEvent.action == "assessment.missing_reason")
    )
    assert event.object_id == str(baseline.id)
    assert event.after == {"missing_reason": "too-ill", "text": None}

    # Changing it needs a reason for the correction; the old value is kept in the audit log.
    with pytest.raises(MissingReasonError, match="needs a reason for the correction"):
        record_missing_reason(
            session,
            now=later,
            actor=NURSE,
            reasons=reasons,
            assessment=baseline,
            code="in-hospital",
        )
    assert baseline.missing_reason == "too-ill"
    record_missing_reason(
        session,
        now=later + timedelta(hours=1),
        actor=NURSE,
        reasons=reasons,
        assessment=baseline,
        code="other",
        text="  Moved abroad  ",
        correction_reason="Relative called",
    )
    session.commit()
    assert (baseline.missing_reason, baseline.missing_reason_text) == ("other", "Moved abroad")
    events = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.action == "assessment.missing_reason")
        .order_by(AuditEvent.id)
    ).all()
    assert [e.before for e in events] == [None, {"missing_reason": "too-ill", "text": None}]
    assert events[-1].reason == "Relative called"


def test_bad_reasons_are_refused_and_nothing_is_saved(app, session, make_site, make_patient):
    baseline, later = _missed_baseline(app, session, make_site, make_patient)
    reasons = app.extensions["missing_reasons"]
    with pytest.raises(MissingReasonError, match="Unknown missing reason 'lost'"):
        record_missing_reason(
            session, now=later, actor=NURSE, reasons=reasons, assessment=baseline, code="lost"
        )
    with pytest.raises(MissingReasonError, match="'other' needs a text"):
        record_missing_reason(
            session,
            now=later,
            actor=NURSE,
            reasons=reasons,
            assessment=baseline,
            code="other",
            text="   ",
        )
    open_one = session.scalar(
        select(Assessment)
        .where(Assessment.patient_id == baseline.patient_id, Assessment.id != baseline.id)
        .order_by(Assessment.due_date)
    )
    with pytest.raises(MissingReasonError, match="is scheduled, not missed"):
        record_missing_reason(
            session, now=later, actor=NURSE, reasons=reasons, assessment=open_one, code="declined"
        )
    session.commit()
    assert baseline.missing_reason is None and open_one.missing_reason is None
    assert (
        session.scalar(select(AuditEvent).where(AuditEvent.action == "assessment.missing_reason"))
        is None
    )


def test_the_service_proposes_a_reason_it_knows(app, session, make_site, make_patient):
    baseline, later = _missed_baseline(app, session, make_site, make_patient)
    assert proposed_reason(session, baseline) is None  # nothing known: the nurse must ask

    for status in (MessageStatus.UNDELIVERED, MessageStatus.FAILED):
        session.add(
            OutboxMessage(
                patient_id=baseline.patient_id,
                assessment_id=baseline.id,
                kind="invitation",
                language="sv",
                scheduled_for=later,
                status=status.value,
                created_at=later,
                updated_at=later,
            )
        )
    session.flush()
    assert proposed_reason(session, baseline) == "not-delivered"

    baseline.patient.opted_out = True
    baseline.patient.opted_out_at = datetime(2026, 3, 20, 9, 0, tzinfo=UTC)
    session.flush()
    assert proposed_reason(session, baseline) == "declined"
