"""Erasing the phone numbers of patients whose follow-up ended (GDPR data minimisation)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from pro_service.models import Assessment, AuditEvent, MessageStatus, OutboxMessage, Patient


def _finish(patient: Patient, *, status: str = "completed") -> None:
    for assessment in patient.assessments:
        assessment.status = status


def _followed(make_site, make_patient, session):
    site = make_site("SE-LUN")
    ended = make_patient(site, study_id="P-ENDED", inclusion_date=date(2024, 1, 10))
    _finish(ended, status="expired")
    ongoing = make_patient(site, study_id="P-OPEN", inclusion_date=date(2024, 1, 10))
    _finish(ongoing)
    ongoing.assessments[-1].status = "open"
    recent = make_patient(site, study_id="P-RECENT", inclusion_date=date(2024, 1, 10))
    _finish(recent)
    last = max(a.window_closes for a in ended.assessments)
    session.add(
        OutboxMessage(
            patient_id=ended.id,
            kind="opt_out",
            language="sv",
            scheduled_for=ended.created_at,
            status=MessageStatus.PENDING.value,
            attempts=0,
            created_at=ended.created_at,
            updated_at=ended.created_at,
        )
    )
    recent.assessments[-1].window_closes = date(2026, 3, 1)
    session.commit()
    return {"ended": ended.id, "open": ongoing.id, "recent": recent.id}, last


def _phones(session):
    session.expire_all()
    return {p.study_id: p.phone_encrypted is not None for p in session.scalars(select(Patient))}


def test_a_dry_run_lists_who_would_be_purged_and_changes_nothing(
    runner, session, make_site, make_patient
):
    _ids, last = _followed(make_site, make_patient, session)
    result = runner.invoke(
        args=["purge-contact-details", "--ended-before", "2026-01-01", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert f"P-ENDED      followed until {last.isoformat()}" in result.output
    assert "P-OPEN" not in result.output and "P-RECENT" not in result.output
    assert "Phone numbers would be erased: 1 (dry run)" in result.output
    assert _phones(session) == {"P-ENDED": True, "P-OPEN": True, "P-RECENT": True}
    assert (
        session.scalars(select(AuditEvent.action)).all().count("patient.contact_details_purged")
        == 0
    )


def test_purging_erases_only_ended_follow_up_audited_and_cancels_waiting_sms(
    runner, session, make_site, make_patient
):
    ids, last = _followed(make_site, make_patient, session)
    result = runner.invoke(args=["purge-contact-details", "--ended-before", "2026-01-01"])
    assert result.exit_code == 0, result.output
    assert "Phone numbers erased: 1" in result.output
    assert _phones(session) == {"P-ENDED": False, "P-OPEN": True, "P-RECENT": True}
    ended = session.get(Patient, ids["ended"])
    assert ended.phone_lookup is None
    assert {a.status for a in ended.assessments} == {"expired"}  # the study data stay
    message = session.scalars(select(OutboxMessage).where(OutboxMessage.patient_id == ended.id))
    assert [m.status for m in message] == ["cancelled"]
    (event,) = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "patient.contact_details_purged")
    ).all()
    assert event.object_id == str(ids["ended"])
    assert event.actor_type == "operator"
    assert event.after == {
        "has_phone": False,
        "followed_until": last.isoformat(),
        "messages_cancelled": 1,
    }
    assert event.reason == "retention: follow-up ended before 2026-01-01"

    again = runner.invoke(args=["purge-contact-details", "--ended-before", "2026-01-01"])
    assert "Phone numbers erased: 0" in again.output


def test_a_day_in_the_future_or_not_a_date_is_refused(runner, session, make_site, make_patient):
    _followed(make_site, make_patient, session)
    future = runner.invoke(args=["purge-contact-details", "--ended-before", "2999-01-01"])
    assert future.exit_code != 0
    assert "is in the future" in future.output
    bad = runner.invoke(args=["purge-contact-details", "--ended-before", "31.12.2025"])
    assert bad.exit_code != 0
    assert "'31.12.2025' does not match the format '%Y-%m-%d'" in bad.output
    assert _phones(session) == {"P-ENDED": True, "P-OPEN": True, "P-RECENT": True}
    assert session.scalars(select(Assessment)).first() is not None
