"""Anchors as data: a patient not operated keeps answering on the follow-up track the schedule
gives that status, counted from the decision; the decision date is recorded with the status and
corrected like any anchor date; a schedule may declare an anchor of its own (a start of
chemotherapy) and nurses record it, without code changes. Each rule on SQLite and PostgreSQL,
with the scheduler's own jobs run at the dates that matter."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
import yaml
from sqlalchemy import select

from pro_service.audit import Actor
from pro_service.crypto import hash_token
from pro_service.models import AuditEvent, MessageStatus, OutboxMessage
from pro_service.patients.schedule_changes import (
    ScheduleChangeError,
    change_anchor_date,
    correct_status,
)
from pro_service.scheduler.jobs import run_job
from pro_service.scheduling.assessments import current_token

from builders import leave

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 16, 10, 0, tzinfo=UTC)  # Monday 16 March 2026, 11:00 in Stockholm
NURSE = Actor.staff(7)
TRACK = ("nonop_m3", "nonop_m6", "nonop_m12")


def _states(patient) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {a.timepoint: a.status for a in patient.assessments}


def _by_key(patient):  # type: ignore[no-untyped-def]
    return {a.timepoint: a for a in patient.assessments}


def _messages(session, patient, kind: str) -> list[OutboxMessage]:  # type: ignore[no-untyped-def]
    return list(
        session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.patient_id == patient.id, OutboxMessage.kind == kind
            )
        )
    )


def _jobs(app, session, when: datetime, *names: str) -> None:  # type: ignore[no-untyped-def]
    """Run the scheduler's jobs at ``when`` as its process does: apart from the test's session
    (in a thread of their own, with their own session); the test then reads what they did."""
    session.commit()
    failures: list[BaseException] = []

    def scheduler() -> None:
        try:
            for name in names:
                run_job(app, name)
        except BaseException as exc:  # re-raised in the test
            failures.append(exc)

    with time_machine.travel(when, tick=False):
        thread = threading.Thread(target=scheduler)
        thread.start()
        thread.join()
    if failures:
        raise failures[0]
    session.expire_all()


@pytest.fixture
def not_operated(app, session, make_site, make_patient):  # type: ignore[no-untyped-def]
    """Included 5 January, no surgery; on 16 March the multidisciplinary conference decides
    not to operate (decision dated 10 March)."""
    site = make_site(time_zone="Europe/Stockholm")
    patient = make_patient(site, inclusion_date=date(2026, 1, 5), at=NOW - timedelta(days=70))
    _jobs(app, session, NOW, "windows")  # the baseline's window closed in January: missed
    leave(
        app,
        session,
        patient,
        "not_operated",
        now=NOW,
        on=date(2026, 3, 10),
        reason="progression during chemotherapy",
        actor=NURSE,
    )
    session.commit()
    return patient


def test_not_operated_starts_the_follow_up_counted_from_the_decision(app, session, not_operated):
    patient = not_operated
    assert patient.status == "not_operated" and patient.status_date == date(2026, 3, 10)
    states = _states(patient)
    assert states["baseline"] == "expired"  # its window passed before the decision
    assert {states[key] for key in TRACK} == {"scheduled"}
    m3 = _by_key(patient)["nonop_m3"]
    assert (m3.anchor, m3.due_date) == ("no_surgery_decision", date(2026, 6, 10))
    assert (m3.window_opens, m3.window_closes) == (date(2026, 5, 27), date(2026, 6, 24))
    assert _by_key(patient)["nonop_m12"].due_date == date(2027, 3, 10)
    event = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "patient.not_operated")
    ).one()
    assert event.after["status_date"] == "2026-03-10"
    assert event.after["follow_up_timepoints"] == {
        "nonop_m3": "2026-06-10",
        "nonop_m6": "2026-09-10",
        "nonop_m12": "2027-03-10",
    }


def test_a_patient_not_operated_gets_the_sms_and_answers_on_the_link(
    app, session, client, not_operated
):
    """The scheduler opens the 3-month follow-up on 27 May, sends its invitation and, three
    days later, a reminder; the link works for a patient who is not operated."""
    opens = datetime(2026, 5, 27, 8, 0, tzinfo=UTC)  # 10:00 in Stockholm
    _jobs(app, session, opens, "windows", "invitations")
    m3 = _by_key(not_operated)["nonop_m3"]
    assert m3.status == "open"
    (invitation,) = _messages(session, not_operated, "invitation")
    assert invitation.assessment_id == m3.id
    assert invitation.status == MessageStatus.PENDING.value

    _jobs(app, session, opens + timedelta(days=3), "windows", "reminders")
    reminders = _messages(session, not_operated, "reminder")
    assert [r.assessment_id for r in reminders] == [m3.id]
    assert not_operated.status == "not_operated"
    # The follow-up job leaves a patient not operated as they are (not "completed").
    _jobs(app, session, opens + timedelta(days=3), "follow_up")
    assert not_operated.status == "not_operated"

    # The patient opens the link from the SMS.
    token = current_token(m3, app.extensions["vault"])
    assert token is not None and hash_token(token) == m3.token_hash
    session.commit()
    with time_machine.travel(opens + timedelta(days=3, hours=1), tick=False):
        welcome = client.get(f"/q/{token}/welcome?lang=en")
    assert welcome.status_code == 200
    assert f"/q/{token}/s/1" in welcome.text


def test_a_decision_recorded_late_opens_what_is_open_and_misses_what_has_passed(
    app, session, make_site, make_patient
):
    site = make_site(time_zone="Europe/Stockholm")
    patient = make_patient(site, inclusion_date=date(2026, 1, 5), at=NOW - timedelta(days=70))
    later = datetime(2026, 6, 30, 10, 0, tzinfo=UTC)
    with time_machine.travel(later, tick=False):
        leave(
            app,
            session,
            patient,
            "not_operated",
            now=later,
            on=date(2026, 1, 20),  # recorded five months late
            reason="decision found in the records",
        )
        session.commit()
    states = _states(patient)
    # 3 months after 20 January: 20 April, window 6 April to 4 May, passed: missed. 6 months:
    # 20 July, window opens 6 July: scheduled.
    assert states["nonop_m3"] == "expired"
    assert states["nonop_m6"] == "scheduled"

    patient2 = make_patient(site, inclusion_date=date(2026, 1, 5), at=NOW - timedelta(days=70))
    with time_machine.travel(later, tick=False):
        leave(app, session, patient2, "not_operated", now=later, on=date(2026, 3, 25), reason="x")
        session.commit()
    m3 = _by_key(patient2)["nonop_m3"]  # due 25 June: its window is open on 30 June
    assert m3.status == "open" and m3.token_hash is not None
    _jobs(app, session, later + timedelta(minutes=1), "invitations")
    session.expire_all()
    assert [m.assessment_id for m in _messages(session, patient2, "invitation")] == [m3.id]


@pytest.mark.parametrize(
    ("status", "on", "kind", "field", "message"),
    [
        ("not_operated", None, None, "status_date", "Give the date the status took effect."),
        ("not_operated", date(2026, 3, 17), None, "status_date", "The date is in the future."),
        ("deceased", date(2026, 3, 17), None, "status_date", "The date is in the future."),
        ("not_operated", date(2026, 1, 4), None, "status_date", "before the inclusion date"),
        ("withdrawn", date(2026, 3, 16), "", "withdrawal_kind", "the questionnaires or the study"),
        ("withdrawn", date(2026, 3, 16), "all", "withdrawal_kind", "the questionnaires or"),
    ],
)
def test_a_bad_status_date_or_kind_is_refused_and_changes_nothing(
    app, session, make_site, make_patient, status, on, kind, field, message
):
    from pro_service.patients.schedule_changes import end_participation

    site = make_site(time_zone="Europe/Stockholm")
    patient = make_patient(site, inclusion_date=date(2026, 1, 5), at=NOW - timedelta(days=70))
    before = _states(patient)
    with pytest.raises(ScheduleChangeError) as refused:
        end_participation(
            session,
            now=NOW,
            actor=NURSE,
            schedule=app.extensions["schedule"],
            vault=app.extensions["vault"],
            patient=patient,
            status=status,
            status_date=on,
            withdrawal_kind=kind,
            reason="a reason",
            registry=app.extensions["instruments"],
        )
    assert refused.value.field == field
    assert message in str(refused.value)
    session.rollback()
    assert patient.status == "active" and patient.status_date is None
    assert patient.recorded_anchors == []
    assert _states(patient) == before


def test_a_withdrawal_records_its_kind(app, session, make_site, make_patient):
    site = make_site()
    patient = make_patient(site)
    leave(app, session, patient, "withdrawn", now=NOW, reason="patient's wish", kind="study")
    session.commit()
    assert (patient.withdrawal_kind, patient.status_date) == ("study", date(2026, 3, 16))
    assert set(_states(patient).values()) == {"cancelled"}  # no follow-up track for it
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "patient.withdrawn"))
    assert event.one().after["withdrawal_kind"] == "study"


def _set_date(app, session, patient, anchor, day, *, reason):  # type: ignore[no-untyped-def]
    """A nurse records (or corrects, or removes) the date of ``anchor`` on NOW; committed."""
    changed = change_anchor_date(
        session,
        now=NOW,
        actor=NURSE,
        schedule=app.extensions["schedule"],
        vault=app.extensions["vault"],
        patient=patient,
        anchor=anchor,
        new_date=day,
        reason=reason,
    )
    session.commit()
    return changed


def _move_decision(app, session, patient, new_date, *, reason="date typed wrong"):  # type: ignore[no-untyped-def]
    return _set_date(app, session, patient, "no_surgery_decision", new_date, reason=reason)


def test_the_decision_date_is_corrected_with_a_reason_and_the_follow_up_follows(
    app, session, not_operated
):
    patient = not_operated
    with pytest.raises(ScheduleChangeError) as refused:
        _move_decision(app, session, patient, date(2026, 3, 3), reason=" ")
    assert refused.value.field == "reason"
    session.rollback()

    changed = _move_decision(app, session, patient, date(2026, 3, 3))
    assert {a.timepoint for a in changed} == set(TRACK)
    assert patient.status_date == date(2026, 3, 10)  # the status's own date is not rewritten
    assert patient.recorded_anchors[0].day == date(2026, 3, 3)
    assert _by_key(patient)["nonop_m3"].due_date == date(2026, 6, 3)
    event = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "patient.anchor_date_changed")
    ).one()
    assert event.before["date"] == "2026-03-10" and event.after["date"] == "2026-03-03"
    assert event.before["nonop_m3"]["due_date"] == "2026-06-10"
    assert event.after["nonop_m3"]["due_date"] == "2026-06-03"
    assert event.reason == "date typed wrong"


@pytest.mark.parametrize(
    ("new_date", "message"),
    [
        (None, "This date is required while the patient has this status."),
        (date(2026, 3, 20), "is in the future"),
        (date(2025, 12, 1), "is before the date of “Inclusion” (2026-01-05)"),
    ],
)
def test_a_decision_date_that_contradicts_another_is_refused(
    app, session, not_operated, new_date, message
):
    with pytest.raises(ScheduleChangeError) as refused:
        _move_decision(app, session, not_operated, new_date)
    assert message in str(refused.value)
    session.rollback()
    assert not_operated.recorded_anchors[0].day == date(2026, 3, 10)


def test_the_decision_date_belongs_to_the_status(app, session, make_site, make_patient):
    """An active patient has no decision not to operate: the date is recorded with the status."""
    patient = make_patient(make_site())
    with pytest.raises(ScheduleChangeError) as refused:
        _move_decision(app, session, patient, date(2026, 3, 10))
    assert "recorded with the status" in str(refused.value)


def test_correcting_not_operated_withdraws_the_follow_up_but_keeps_its_answers(
    app, session, not_operated
):
    """Recorded for the wrong patient in June, after the 3-month follow-up was started: the
    started one is kept (answers are never dropped), the rest is no longer expected."""
    from pro_service.answering.responses import save_answers

    _jobs(app, session, datetime(2026, 5, 27, 8, 0, tzinfo=UTC), "windows")
    session.expire_all()
    m3 = _by_key(not_operated)["nonop_m3"]
    c30 = app.extensions["instruments"].get("qlq-c30")
    when = datetime(2026, 5, 28, 9, 0, tzinfo=UTC)
    save_answers(session, now=when, assessment=m3, instrument=c30, language="sv", answers={1: 2})
    session.commit()
    correct_status(
        session,
        now=when,
        actor=NURSE,
        schedule=app.extensions["schedule"],
        vault=app.extensions["vault"],
        patient=not_operated,
        reason="entered for the wrong patient",
    )
    session.commit()
    states = _states(not_operated)
    assert states["nonop_m3"] == "in_progress"
    assert (states["nonop_m6"], states["nonop_m12"]) == ("cancelled", "cancelled")
    assert not_operated.recorded_anchors == []


# --- an anchor of the study's own, declared in the schedule file --------------------------------


@pytest.fixture
def app_overrides(app_overrides, tmp_path):  # type: ignore[no-untyped-def]
    """ScanPan plus a start of chemotherapy, and a time point one month after it."""
    data = yaml.safe_load(
        (REPO / "questionnaires" / "schedules" / "scanpan.yaml").read_text(encoding="utf-8")
    )
    data["anchors"]["chemo_start"] = {
        "label": {"sv": "Start av cytostatika", "fi": "Solunsalpaajien aloitus", "en": "Chemo"},
        "not_before": "inclusion",
        "past_only": True,
    }
    data["timepoints"].append(
        {
            "key": "chemo_m1",
            "label": {"sv": "1 mån cyt", "fi": "1 kk syt", "en": "1 month of chemotherapy"},
            "anchor": "chemo_start",
            "offset": {"months": 1},
            "window": {"opens": -7, "closes": 7},
            "reminders": [3],
        }
    )
    path = tmp_path / "with-chemo.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return {**app_overrides, "schedule_file": path}


def _chemo(app, session, patient, day, *, reason=""):  # type: ignore[no-untyped-def]
    return _set_date(app, session, patient, "chemo_start", day, reason=reason)


def test_an_anchor_of_the_schedules_own_is_recorded_moved_and_removed(
    app, session, make_site, make_patient
):
    patient = make_patient(make_site(), inclusion_date=date(2026, 3, 2))
    assert "chemo_m1" not in _states(patient)  # no date yet: not created
    _chemo(app, session, patient, date(2026, 3, 9))  # the first date needs no reason
    chemo_m1 = _by_key(patient)["chemo_m1"]
    assert (chemo_m1.anchor, chemo_m1.due_date, chemo_m1.status) == (
        "chemo_start",
        date(2026, 4, 9),
        "scheduled",
    )
    _chemo(app, session, patient, date(2026, 3, 12), reason="started three days later")
    assert chemo_m1.due_date == date(2026, 4, 12)
    with pytest.raises(ScheduleChangeError, match="is in the future"):
        _chemo(app, session, patient, date(2026, 3, 30), reason="x")
    session.rollback()
    _chemo(app, session, patient, None, reason="chemotherapy was not started")
    assert chemo_m1.status == "cancelled"
    actions = session.scalars(
        select(AuditEvent.action).where(AuditEvent.action == "patient.anchor_date_changed")
    ).all()
    assert len(actions) == 3
