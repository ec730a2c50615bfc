"""The compliance report: every state and rate of a study built through the services, checked
against figures counted independently from the raw tables; the page, its CSV and the command."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from pro_service.answering.missing import record_missing_reason
from pro_service.answering.responses import complete_assessment, save_answers
from pro_service.audit import Actor
from pro_service.compliance import NO_REASON, TOTAL, compliance_report
from pro_service.models import Assessment, Patient, Site
from pro_service.scheduling.assessments import update_windows

from builders import leave

NOW = datetime(2026, 3, 16, 10, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=20)  # every baseline window of NOW has closed
NURSE = Actor.staff(7)


def _instrument(app, key: str):  # type: ignore[no-untyped-def]
    return app.extensions["instruments"].get(key)


def _baseline(patient: Patient) -> Assessment:
    return next(a for a in patient.assessments if a.timepoint == "baseline")


def _answer(app, session, assessment: Assessment, *, complete: bool) -> None:
    c30 = _instrument(app, "qlq-c30")
    answers = {n: 2 for n in c30.items} if complete else {1: 2}
    save_answers(
        session, now=NOW, assessment=assessment, instrument=c30, language="sv", answers=answers
    )
    if complete:
        pan = _instrument(app, "qlq-pan26")
        save_answers(
            session,
            now=NOW,
            assessment=assessment,
            instrument=pan,
            language="sv",
            answers={n: 1 for n in pan.items},
        )
        assert complete_assessment(
            session,
            now=NOW,
            assessment=assessment,
            registry=app.extensions["instruments"],
            language="sv",
            actor=Actor("patient"),
        )


@pytest.fixture
def study(app, session, make_site, make_patient):
    """SE-LUN: complete, partial, missed with and without a reason, and a patient who died after
    answering the baseline; FI-TUR: one patient whose baseline is still open at LATER, one who
    died and one who was not operated, both before a surgery date was known."""
    vault = app.extensions["vault"]
    lund = make_site("SE-LUN")
    turku = make_site("FI-TUR", country="FI", time_zone="Europe/Helsinki", language="fi")
    surgery = date(2026, 5, 4)
    patients = {
        name: make_patient(lund, inclusion_date=date(2026, 3, 16), surgery_date=surgery)
        for name in ("complete", "partial", "missed_reason", "missed_none", "died")
    }
    late = make_patient(turku, inclusion_date=date(2026, 4, 1), phone="+358 50 123 4567")
    undated = {
        name: make_patient(turku, inclusion_date=date(2026, 3, 16), phone=phone)
        for name, phone in (
            ("died_early", "+358 50 123 4568"),
            ("not_operated", "+358 50 123 4569"),
        )
    }
    session.commit()
    update_windows(session, now=NOW, vault=vault)
    session.commit()
    _answer(app, session, _baseline(patients["complete"]), complete=True)
    _answer(app, session, _baseline(patients["partial"]), complete=False)
    _answer(app, session, _baseline(patients["died"]), complete=True)
    session.commit()
    leave(
        app,
        session,
        patients["died"],
        "deceased",
        now=NOW + timedelta(days=2),
        reason="Died on 17 March",
        actor=NURSE,
    )
    session.commit()
    for name, status in (("died_early", "deceased"), ("not_operated", "not_operated")):
        leave(
            app,
            session,
            undated[name],
            status,
            now=NOW + timedelta(days=3),
            reason="before any surgery date",
            actor=NURSE,
        )
    session.commit()
    update_windows(session, now=LATER, vault=vault)
    session.commit()
    record_missing_reason(
        session,
        now=LATER,
        actor=NURSE,
        reasons=app.extensions["missing_reasons"],
        assessment=_baseline(patients["missed_reason"]),
        code="too-ill",
    )
    session.commit()
    return {"lund": lund.id, "turku": turku.id, "late": late.id}


def _independent(session, schedule, site_ids=None) -> dict[tuple[str, str], dict[str, int]]:
    """The same figures from the raw tables, counted row by row in Python: a time point with no
    row is not yet due while the patient's status still gives it, else not expected."""
    timepoints = [tp.key for tp in schedule.timepoints]
    sites = {s.id: s.code for s in session.scalars(select(Site))}
    if site_ids is not None:
        sites = {i: c for i, c in sites.items() if i in site_ids}
    patients = [p for p in session.scalars(select(Patient)) if p.site_id in sites]
    figures: dict[tuple[str, str], dict[str, int]] = {}
    for code in [*sites.values(), TOTAL]:
        for tp in timepoints:
            figures[(code, tp)] = dict.fromkeys(
                (
                    "patients",
                    "not_yet_due",
                    "open",
                    "complete",
                    "partial",
                    "missed",
                    "not_expected",
                    "missed_reason",
                    "missed_none",
                ),
                0,
            )
    for patient in patients:
        by_tp = {a.timepoint: a for a in patient.assessments}
        given = {t.key for t in schedule.timepoints_for(patient.status)}
        for tp in timepoints:
            for key in ((sites[patient.site_id], tp), (TOTAL, tp)):
                counts = figures[key]
                counts["patients"] += 1
                row = by_tp.get(tp)
                status = None if row is None else row.status
                if status is None and tp not in given:
                    counts["not_expected"] += 1
                elif status in (None, "scheduled"):
                    counts["not_yet_due"] += 1
                elif status in ("open", "in_progress"):
                    counts["open"] += 1
                elif status == "completed":
                    counts["complete"] += 1
                elif status == "partial":
                    counts["partial"] += 1
                elif status == "expired":
                    counts["missed"] += 1
                    counts["missed_reason" if row.missing_reason else "missed_none"] += 1
                elif status == "cancelled":
                    counts["not_expected"] += 1
    return figures


def test_every_state_and_rate_matches_the_raw_tables(app, session, study):
    schedule = app.extensions["schedule"]
    reasons = app.extensions["missing_reasons"].codes
    report = compliance_report(session, schedule=schedule, reasons=reasons, site_ids=None)
    expected = _independent(session, schedule)
    assert report.sites == ("FI-TUR", "SE-LUN")
    for (site, tp), counts in expected.items():
        row = report.rows[(site, tp)]
        assert row.patients == counts["patients"], (site, tp)
        assert row.not_yet_due == counts["not_yet_due"], (site, tp)
        assert row.open == counts["open"], (site, tp)
        assert row.complete == counts["complete"], (site, tp)
        assert row.partial == counts["partial"], (site, tp)
        assert row.missed == counts["missed"], (site, tp)
        assert row.missed_by_reason.get(NO_REASON, 0) == counts["missed_none"], (site, tp)
        assert row.not_expected == counts["not_expected"], (site, tp)

    # The scenario itself, by hand: SE-LUN's baseline has one of each state.
    baseline = report.rows[("SE-LUN", "baseline")]
    assert (baseline.patients, baseline.complete, baseline.partial) == (5, 2, 1)
    assert baseline.missed_by_reason == {"too-ill": 1, NO_REASON: 1}
    assert baseline.completion_rate == pytest.approx(3 / 5)  # received 3 of expected 5
    assert baseline.available_data_rate == pytest.approx(3 / 5)
    # The patient who died: the baseline counts as answered, later time points not expected.
    preop = report.rows[("SE-LUN", "preop")]
    assert preop.not_expected == 1 and preop.patients == 5
    # FI-TUR's patient was included on 1 April: the baseline is open, the rest not yet due.
    # The two who died or were not operated before a surgery date was known: their time points
    # after surgery were never created and never will be, so they are not expected, not "not
    # yet due" for ever; the not-operated patient's follow-up is, until its window opens.
    turku = report.rows[("FI-TUR", "baseline")]
    assert (turku.open, turku.expected, turku.completion_rate) == (1, 0, None)
    assert (turku.patients, turku.not_expected) == (3, 2)  # both cancelled while open
    for tp in ("preop", "m3", "m24"):
        after = report.rows[("FI-TUR", tp)]
        assert (after.not_yet_due, after.not_expected) == (1, 2), tp
        assert report.rows[("SE-LUN", tp)].not_yet_due == 4, tp  # dated, on the main course
    follow_up = report.rows[("FI-TUR", "nonop_m3")]
    assert (follow_up.not_yet_due, follow_up.not_expected) == (1, 2)
    assert report.rows[("SE-LUN", "nonop_m3")].not_expected == 5
    total = report.rows[(TOTAL, "baseline")]
    assert (total.patients, total.received, total.expected) == (8, 3, 5)
    assert total.available_data_rate == pytest.approx(3 / 8)


def test_the_page_shows_only_the_sites_a_nurse_holds(app, sign_in, staff_study):
    nurse = sign_in("nurse_upp").get("/staff/compliance?lang=en")
    assert nurse.status_code == 200
    assert "Site SE-UPP" in nurse.text and "FI-HEL" not in nurse.text
    assert "All your sites together" not in nurse.text
    investigator = sign_in("investigator").get("/staff/compliance?lang=en").text
    assert "Site FI-HEL" in investigator and "Site SE-UPP" in investigator
    assert "All your sites together" in investigator
    assert "<svg" in investigator and "Completion rate" in investigator
    swedish = sign_in("data_manager").get("/staff/compliance?lang=sv")
    assert swedish.status_code == 200 and "Baslinje" in swedish.text


def test_the_csv_download_and_the_command_write_the_same_table(app, sign_in, staff_study, tmp_path):
    download = sign_in("investigator").get("/staff/compliance.csv")
    assert download.status_code == 200
    assert download.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(download.get_data(as_text=True))))
    assert {r["site"] for r in rows} == {"FI-HEL", "SE-UPP", "ALL"}
    assert "missed_too-ill" in rows[0] and "missed_no-reason-yet" in rows[0]
    ups = [r for r in rows if r["site"] == "SE-UPP" and r["timepoint"] == "baseline"]
    assert ups[0]["patients"] == "2"
    result = app.test_cli_runner().invoke(args=["compliance", "-o", str(tmp_path / "c.csv")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c.csv").read_bytes() == download.get_data()
    one = app.test_cli_runner().invoke(
        args=["compliance", "-o", str(tmp_path / "one.csv"), "--site", "fi-hel"]
    )
    assert one.exit_code == 0, one.output
    assert "SE-UPP" not in (tmp_path / "one.csv").read_text(encoding="utf-8")
    bad = app.test_cli_runner().invoke(
        args=["compliance", "-o", str(tmp_path / "x.csv"), "--site", "NOPE"]
    )
    assert bad.exit_code == 1 and "no site with code NOPE" in bad.output
    assert not (tmp_path / "x.csv").exists()
