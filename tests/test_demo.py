from __future__ import annotations

import re

from sqlalchemy import func, select

from pro_service.models import (
    Assessment,
    AuditEvent,
    Patient,
    Response,
    Score,
    Site,
    StaffUser,
)

LINK = re.compile(
    r"^\s+(\S+)\s+(sv|fi|en)\s+(\S+)\s+(\S+)\s+(https://pro\.example\.test/q/\S+)$", re.M
)


def _counts(session):
    return {
        model.__name__: session.scalar(select(func.count()).select_from(model))
        for model in (Site, StaffUser, Patient, Assessment, Response, Score, AuditEvent)
    }


def test_demo_seeds_sites_staff_and_patients_and_prints_open_links(runner, session):
    result = runner.invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    assert "Demo study created." in result.output
    assert "nurse.stockholm@example.org" in result.output
    assert "password for all: " in result.output

    links = LINK.findall(result.output)
    assert {lang for _sid, lang, *_rest in links} == {"sv", "fi", "en"}
    assert {status for *_a, status, _url in links} >= {"open", "in_progress", "overdue"}

    sites = {s.code: s for s in session.scalars(select(Site))}
    assert {s.time_zone for s in sites.values()} == {"Europe/Stockholm", "Europe/Helsinki"}
    statuses = set(session.scalars(select(Assessment.status)))
    assert {"completed", "open", "in_progress", "expired", "scheduled"} <= statuses

    # Completed time points carry every answer (but the paper form's two blank lines) and every
    # scale score of both instruments.
    completed = session.scalars(select(Assessment).where(Assessment.status == "completed")).all()
    assert completed
    for assessment in completed:
        assert len(assessment.responses) == (54 if assessment.mode == "paper" else 56)
        assert {s.scale for s in assessment.scores} >= {"QL2", "C30_SUMMARY", "PAN_PP", "PAN_SX"}
        assert assessment.token_encrypted is None


def test_demo_run_twice_changes_nothing_and_prints_the_same_links(runner, session):
    first = runner.invoke(args=["demo"])
    assert first.exit_code == 0, first.output
    before = _counts(session)
    second = runner.invoke(args=["demo"])
    assert second.exit_code == 0, second.output
    assert "already there; nothing changed" in second.output
    session.expire_all()
    assert _counts(session) == before
    assert LINK.findall(first.output) == LINK.findall(second.output)


def test_demo_phone_numbers_are_encrypted_and_not_in_the_audit_log(runner, session):
    assert runner.invoke(args=["demo"]).exit_code == 0
    patient = session.scalar(select(Patient).where(Patient.study_id == "STO-001"))
    assert b"0701740605" not in patient.phone_encrypted
    assert b"46701740605" not in patient.phone_encrypted
    for event in session.scalars(select(AuditEvent)):
        assert "46701740605" not in str(event.before) + str(event.after)
    no_phone = session.scalar(select(Patient).where(Patient.study_id == "STO-004"))
    assert no_phone.phone_invalid is True


def test_demo_shows_the_board_flags_a_nurse_meets(runner, session):
    """A patient without a number (bad-number flag) and one who stopped the messages."""
    assert runner.invoke(args=["demo"]).exit_code == 0
    stopped = session.scalar(select(Patient).where(Patient.study_id == "STO-005"))
    assert stopped.opted_out is True
    assert session.scalar(select(Patient).where(Patient.study_id == "STO-004")).phone_invalid


def test_in_the_evening_the_demo_says_when_the_sms_go_out_and_where_links_are(runner, session):
    import time_machine

    with time_machine.travel("2026-12-04T20:30:00+00:00", tick=False):  # 21:30 in Stockholm
        result = runner.invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    assert "SMS (the console backend writes each SMS" in result.output
    assert re.search(
        r"DEMO-STO\s+sending hours 09:00-20:00 Europe/Stockholm, closed now: "
        r"the next SMS go out at 2026-12-05 09:00",
        result.output,
    ), result.output
    assert "DEMO-HEL" in result.output and "2026-12-05 09:00" in result.output
    assert "patient page (Show the link)" in result.output

    with time_machine.travel("2026-12-05T10:00:00+00:00", tick=False):  # 11:00 in Stockholm
        again = runner.invoke(args=["demo"])
    assert re.search(r"DEMO-STO\s+sending hours .* open now: due SMS go out", again.output)


def test_in_development_the_notice_points_to_the_outbox_page(app):
    from dataclasses import replace

    from pro_service.cli.demo import sms_notice

    settings = app.config["PRO_SETTINGS"]
    development = sms_notice(replace(settings, env="development"), [])
    assert f"{settings.public_base_url}/dev/outbox" in "\n".join(development)
    assert "/dev/outbox" not in "\n".join(sms_notice(settings, []))  # no such page elsewhere


def test_the_demo_has_missed_time_points_with_and_without_a_reason(runner, session):
    assert runner.invoke(args=["demo"]).exit_code == 0
    missed = session.execute(
        select(Patient.study_id, Assessment.timepoint, Assessment.missing_reason)
        .join(Patient)
        .where(Assessment.status == "expired")
    ).all()
    reasons = {reason for _sid, _tp, reason in missed}
    assert "in-hospital" in reasons  # recorded
    assert None in reasons  # left for the nurses' task list on the board
    recorded = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "assessment.missing_reason")
    ).all()
    assert [e.after["missing_reason"] for e in recorded] == ["in-hospital"]


def test_the_demo_has_a_partial_time_point_scored_by_the_half_rule(runner, session):
    assert runner.invoke(args=["demo"]).exit_code == 0
    partial = session.execute(
        select(Patient.study_id, Assessment.timepoint, Assessment.id)
        .join(Patient)
        .where(Assessment.status == "partial")
    ).all()
    assert [(sid, tp) for sid, tp, _id in partial] == [("STO-005", "preop")]
    values = session.scalars(select(Score.value).where(Score.assessment_id == partial[0][2])).all()
    assert values and any(v is not None for v in values)


def test_the_demo_has_a_paper_form_entered_by_a_nurse(runner, session):
    assert runner.invoke(args=["demo"]).exit_code == 0
    entered = session.execute(
        select(Patient.study_id, Assessment.timepoint, Assessment.status, Assessment.id)
        .join(Patient)
        .where(Assessment.mode == "paper")
    ).all()
    assert [row[:3] for row in entered] == [("STO-003", "m3", "completed")]
    blank = session.scalars(
        select(Response.item_number).where(
            Response.assessment_id == entered[0][3], Response.item_number.in_([11, 40])
        )
    ).all()
    assert blank == []  # the two lines left blank on the form have no answer
    assert (
        session.scalars(
            select(AuditEvent.action).where(AuditEvent.object_id == str(entered[0][3]))
        ).all()[-1]
        == "assessment.entered"
    )


def test_the_demo_has_a_patient_who_was_not_operated(runner, session):
    assert runner.invoke(args=["demo"]).exit_code == 0
    patient = session.scalars(select(Patient).where(Patient.study_id == "STO-006")).one()
    assert patient.status == "not_operated" and patient.surgery_date is None
    states = {a.timepoint: a.status for a in patient.assessments}
    # The baseline answered before the decision is kept; the follow-up after the decision (100
    # days ago) has its 3-month time point open, with a link the demo prints.
    assert states == {
        "baseline": "completed",
        "nonop_m3": "open",
        "nonop_m6": "scheduled",
        "nonop_m12": "scheduled",
    }
    assert patient.recorded_anchors[0].anchor == "no_surgery_decision"
    assert patient.status_date == patient.recorded_anchors[0].day
    (event,) = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "patient.not_operated")
    ).all()
    assert "Progression" in event.reason
