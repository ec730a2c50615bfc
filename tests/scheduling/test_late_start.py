"""A patient registered after a window closed: a time point that allows a late start (ScanPan's
baseline, until the day before surgery) opens on the day of registration, with its invitation;
the others are lost, and registration says which."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import func, select

from pro_service.clock import utcnow
from pro_service.messaging.outbox import queue_invitations
from pro_service.models import Patient
from pro_service.scheduling.assessments import registration_outlook, update_windows
from pro_service.scheduling.schedule import ScheduleFileError, load_schedule

from builders import move_surgery
from pages import csrf_of, read

NOW = datetime(2026, 3, 16, 10, 0, tzinfo=UTC)  # Monday, 11:00 in Stockholm


def _by_key(patient):  # type: ignore[no-untyped-def]
    return {a.timepoint: a for a in patient.assessments}


def test_a_late_registered_patient_gets_a_baseline_opening_today(
    app, session, make_site, make_patient
):
    site = make_site()
    # Included 3 weeks ago (the baseline window closed a week ago), surgery in 10 days.
    patient = make_patient(
        site, inclusion_date=date(2026, 2, 23), surgery_date=date(2026, 3, 26), at=NOW
    )
    session.commit()
    baseline = _by_key(patient)["baseline"]
    assert (baseline.window_opens, baseline.window_closes) == (date(2026, 3, 16), date(2026, 3, 25))
    assert baseline.due_date == date(2026, 3, 16)
    outlook = registration_outlook(patient, app.extensions["schedule"], NOW)
    assert [a.timepoint for a in outlook.opened_late] == ["baseline"]
    assert outlook.lost == []

    update_windows(session, now=NOW, vault=app.extensions["vault"])
    queued = queue_invitations(session, now=NOW, schedule=app.extensions["schedule"])
    session.commit()
    assert baseline.status == "open"
    # One SMS: the baseline's, which leads on to "before surgery" (open too).
    assert queued.queued == 1


def test_past_its_bound_a_late_start_is_lost_and_registration_says_so(
    app, session, make_site, make_patient
):
    site = make_site()
    # Operated a week ago: the day before surgery has passed, so no baseline any more.
    patient = make_patient(
        site, inclusion_date=date(2026, 1, 5), surgery_date=date(2026, 3, 9), at=NOW
    )
    session.commit()
    outlook = registration_outlook(patient, app.extensions["schedule"], NOW)
    assert outlook.opened_late == []
    assert [a.timepoint for a in outlook.lost] == ["baseline", "preop"]
    update_windows(session, now=NOW, vault=app.extensions["vault"])
    session.commit()
    assert _by_key(patient)["baseline"].status == "expired"


def test_without_a_surgery_date_a_late_baseline_gets_a_full_window(
    app, session, make_site, make_patient
):
    site = make_site()
    patient = make_patient(site, inclusion_date=date(2026, 2, 23), at=NOW)
    session.commit()
    baseline = _by_key(patient)["baseline"]
    assert (baseline.window_opens, baseline.window_closes) == (date(2026, 3, 16), date(2026, 3, 30))


def test_an_unknown_late_start_anchor_stops_start_up(tmp_path, app):
    import yaml

    source = app.extensions["schedule"].source_path
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    data["timepoints"][0]["late_start"] = {"anchor": "chemotherapy", "days": 0, "within": 9}
    path = tmp_path / "schedule.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ScheduleFileError) as refused:
        load_schedule(path)
    assert ": timepoints[0].late_start.anchor: unknown anchor 'chemotherapy'" in str(refused.value)


def test_the_registration_page_tells_the_nurse(app, sign_in, staff_study):
    today = utcnow().astimezone(ZoneInfo("Europe/Stockholm")).date()
    client = sign_in("nurse_upp")
    page = client.get("/staff/patients/new?lang=en")
    response = client.post(
        "/staff/patients/new?lang=en",
        data={
            "csrf_token": csrf_of(page.text),
            "site": str(staff_study.sites["SE-UPP"]),
            "study_id": "UPP-050",
            "phone": "070-174 06 50",
            "language": "sv",
            "inclusion_date": (today - timedelta(days=21)).isoformat(),
            "surgery_date": (today + timedelta(days=10)).isoformat(),
        },
        follow_redirects=True,
    )
    assert response.status_code == 200
    closes = (today + timedelta(days=9)).isoformat()
    assert f"Registered after its window: Baseline opens today instead, until {closes}" in (
        response.text
    )
    registered = read(
        app, lambda s: s.scalar(select(func.count()).where(Patient.study_id == "UPP-050"))
    )
    assert registered == 1


def test_the_import_says_what_each_late_patient_gets_and_has_lost(
    runner, session, make_site, tmp_path
):
    make_site("SE-UPP")
    session.commit()
    path = tmp_path / "patients.csv"
    path.write_text(
        "study_id;site;phone;language;inclusion_date;surgery_date\n"
        "UPP-101;SE-UPP;070-174 06 05;sv;2026-02-23;2026-03-26\n"
        "UPP-102;SE-UPP;070-174 06 06;sv;2026-01-05;2026-03-09\n"
        "UPP-103;SE-UPP;070-174 06 07;sv;2026-03-16;\n",
        encoding="utf-8",
    )
    with time_machine.travel(NOW, tick=False):
        result = runner.invoke(args=["import-patients", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "line 2: UPP-101: baseline opens late, today, until 2026-03-25" in lines
    assert (
        "line 3: UPP-102: baseline already past (closed 2026-01-19), not sent; "
        "preop already past (closed 2026-03-08), not sent"
    ) in lines
    assert not any("UPP-103" in line for line in lines)  # on time: nothing to say


def test_long_after_inclusion_a_late_start_is_lost(app, session, make_site, make_patient):
    """Without a surgery date only "within" limits it: 90 days after the normal window."""
    site = make_site()
    patient = make_patient(site, inclusion_date=date(2025, 11, 3), at=NOW)  # closed 17 Nov
    session.commit()
    outlook = registration_outlook(patient, app.extensions["schedule"], NOW)
    assert [a.timepoint for a in outlook.lost] == ["baseline"]


def test_a_surgery_date_set_later_shortens_a_late_baseline_to_the_day_before(
    app, session, make_site, make_patient
):
    site = make_site()
    patient = make_patient(site, inclusion_date=date(2026, 2, 23), at=NOW)  # no surgery yet
    session.commit()
    baseline = _by_key(patient)["baseline"]
    assert baseline.window_closes == date(2026, 3, 30)  # a full window, opened late
    move_surgery(app, session, patient, date(2026, 3, 24), now=NOW, reason="")
    assert baseline.window_closes == date(2026, 3, 23)  # never answered after surgery
    # Its window (16 to 23 March) is open today: it opens now, as a moved time point does.
    assert baseline.status == "open" and baseline.window_opens == date(2026, 3, 16)
