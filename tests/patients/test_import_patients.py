"""``pro-service import-patients``: all or nothing, with a report of every bad row."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from pro_service.clock import utcnow
from pro_service.models import Assessment, AuditEvent, Patient

from builders import build_site

TODAY = utcnow().date()
RECENT = (TODAY - timedelta(days=10)).isoformat()
LATER = (TODAY + timedelta(days=60)).isoformat()
HEADER = "study_id,site,phone,language,inclusion_date,surgery_date"


@pytest.fixture
def sites(session):
    for code, country, zone, language, pattern in (
        ("SE-UPP", "SE", "Europe/Stockholm", "sv", r"UPP-\d{3}"),
        ("FI-HEL", "FI", "Europe/Helsinki", "fi", r"HEL-\d{3}"),
    ):
        build_site(
            session,
            now=utcnow(),
            code=code,
            name=code,
            country=country,
            time_zone=zone,
            default_language=language,
            study_id_pattern=pattern,
        )
    session.commit()


def _write(tmp_path: Path, *lines: str, name: str = "patients.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _patients(session) -> int:
    session.rollback()
    return session.scalar(select(func.count()).select_from(Patient))


def test_a_good_file_registers_every_patient_in_one_go(runner, session, sites, tmp_path):
    path = _write(
        tmp_path,
        HEADER,
        f"UPP-101,SE-UPP,070-174 06 31,,{RECENT},{LATER}",
        f"UPP-102,se-upp,+358 50 123 4501,fi,{RECENT},",
        f"HEL-101,FI-HEL,050 123 4502,en,{RECENT},",
    )
    result = runner.invoke(args=["import-patients", str(path)])
    assert result.exit_code == 0, result.output
    assert "Registered 3 patients" in result.output
    session.rollback()
    patients = {p.study_id: p for p in session.scalars(select(Patient))}
    assert set(patients) == {"UPP-101", "UPP-102", "HEL-101"}
    assert patients["UPP-101"].language == "sv"  # the site's default
    assert patients["HEL-101"].site.code == "FI-HEL"
    vault = runner.app.extensions["vault"]
    assert vault.decrypt(patients["HEL-101"].phone_encrypted) == "+358501234502"  # FI region
    surgery = session.scalar(
        select(func.count())
        .select_from(Assessment)
        .where(Assessment.patient_id == patients["UPP-101"].id)
    )
    assert surgery == 8
    registered = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "patient.registered")
    ).all()
    assert {e.actor_type for e in registered} == {"operator"}
    imported = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "patients.imported")
    ).one()
    assert imported.after == {"count": 3, "file": "patients.csv"}


def test_one_bad_row_saves_nothing_and_every_problem_is_reported(runner, session, sites, tmp_path):
    path = _write(
        tmp_path,
        HEADER,
        f"UPP-101,SE-UPP,070-174 06 31,sv,{RECENT},",  # line 2: good
        f"UPP-102,SE-UPP,12345,sv,{RECENT},",  # line 3: phone
        f"UPP-101,SE-UPP,070-174 06 33,sv,{RECENT},",  # line 4: duplicate in the file
        "UPP-104,SE-UPP,070-174 06 34,sv,1956-01-01,",  # line 5: decades ago
        f"UPP-105,SE-UPP,070-174 06 35,sv,{RECENT},2001-01-01",  # line 6: surgery before
        "UPP-106,SE-UPP,070-174 06 36,de,31/12/2025,",  # line 7: language and date
        f"XX-107,SE-UPP,070-174 06 37,sv,{RECENT},",  # line 8: study ID format
        f"UPP-108,SE-XXX,070-174 06 38,sv,{RECENT},",  # line 9: unknown site
        f"UPP-109,SE-UPP,08-123 456 78,sv,{(TODAY + timedelta(days=400)).isoformat()},",
    )
    result = runner.invoke(args=["import-patients", str(path)])
    assert result.exit_code == 1
    report = result.stderr
    assert "nothing was saved" in report
    expected = [
        "line 3, column phone: This is not a valid mobile phone number",
        "line 4, column study_id: UPP-101 is also on line 2",
        "line 5, column inclusion_date: The inclusion date is more than a year ago.",
        "line 6, column surgery_date: The surgery date is before the inclusion date.",
        "line 7, column inclusion_date: '31/12/2025' is not a date (YYYY-MM-DD)",
        "line 7, column language: The language must be sv, fi or en, not de.",
        "line 8, column study_id: XX-107 does not have this site's study ID format, for example "
        "UPP-001.",
        "line 9, column site: no site with code 'SE-XXX'",
        "line 10, column phone: This is not a valid mobile phone number",
    ]
    for line in expected:
        assert line in report, line
    assert "line 2" not in report.replace("also on line 2", "")
    assert "174 06" not in report and "12345" not in report  # no phone number in the report
    assert _patients(session) == 0
    assert session.scalar(select(func.count()).select_from(AuditEvent)) == 2  # the two sites


def test_a_study_id_already_in_the_database_is_refused(runner, session, sites, tmp_path):
    first = _write(tmp_path, HEADER, f"UPP-101,SE-UPP,070-174 06 31,sv,{RECENT},")
    assert runner.invoke(args=["import-patients", str(first)]).exit_code == 0
    again = _write(
        tmp_path,
        HEADER,
        f"UPP-102,SE-UPP,070-174 06 32,sv,{RECENT},",
        f"UPP-101,SE-UPP,070-174 06 31,sv,{RECENT},",
        name="again.csv",
    )
    result = runner.invoke(args=["import-patients", str(again)])
    assert result.exit_code == 1
    assert "line 3, column study_id: A patient with study ID UPP-101 already exists." in (
        result.stderr
    )
    assert _patients(session) == 1


def test_the_site_option_and_semicolons(runner, session, sites, tmp_path):
    path = _write(
        tmp_path,
        "Study_ID;Phone;Inclusion_Date",
        f"HEL-201;050 123 4511;{RECENT}",
        f"HEL-202;050 123 4512;{RECENT}",
    )
    result = runner.invoke(args=["import-patients", str(path), "--site", "fi-hel"])
    assert result.exit_code == 0, result.output
    assert "Registered 2 patients" in result.output
    session.rollback()
    languages = set(session.scalars(select(Patient.language)))
    assert languages == {"fi"}


def test_a_row_naming_another_site_than_the_option_is_refused(runner, session, sites, tmp_path):
    path = _write(tmp_path, HEADER, f"UPP-101,SE-UPP,070-174 06 31,sv,{RECENT},")
    result = runner.invoke(args=["import-patients", str(path), "--site", "FI-HEL"])
    assert result.exit_code == 1
    assert "line 2, column site: SE-UPP is not the --site FI-HEL" in result.stderr
    assert _patients(session) == 0


@pytest.mark.parametrize(
    ("lines", "args", "message"),
    [
        (["study_id,site,phone,inclusion_date,surgerydate"], [], "unknown column(s) 'surgerydate'"),
        (["study_id,site,phone"], [], "missing column(s) inclusion_date"),
        (["study_id,phone,inclusion_date", f"UPP-1,070,{RECENT}"], [], "missing column(s) site"),
        ([HEADER], [], "no patients in the file"),
        ([HEADER], ["--site", "NOPE"], "--site: no site with code 'NOPE'"),
    ],
)
def test_an_unusable_file_stops_before_anything(
    runner, session, sites, tmp_path, lines, args, message
):
    path = _write(tmp_path, *lines)
    result = runner.invoke(args=["import-patients", str(path), *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert _patients(session) == 0


def test_a_missing_or_non_utf8_file_is_named(runner, session, sites, tmp_path):
    result = runner.invoke(args=["import-patients", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2
    assert "nope.csv: no such file" in result.stderr
    latin = tmp_path / "latin1.csv"
    latin.write_bytes(f"{HEADER}\nUPP-1,SE-UPP,070,sv,{RECENT},Malmö\n".encode("latin-1"))
    result = runner.invoke(args=["import-patients", str(latin)])
    assert result.exit_code == 2
    assert "not UTF-8" in result.stderr
