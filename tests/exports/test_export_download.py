"""The export page (/staff/exports): data managers and admins download a ZIP for their sites."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from datetime import timedelta

import pyreadstat
import pytest
from audit.test_audit_trail import PHONES
from sqlalchemy import select

from pro_service.answering.responses import complete_assessment, instruments_of, save_answers
from pro_service.audit import Actor
from pro_service.clock import utcnow
from pro_service.extensions import db
from pro_service.models import AssessmentStatus, AuditEvent, Patient, Site
from pro_service.scheduling.assessments import issue_token
from pro_service.staff.accounts import create_user

from builders import PASSWORD
from pages import csrf_of, read, sign_in_with_password

NAME = re.compile(r'attachment; filename="pro-export-(\w+)-(\d{4}-\d{2}-\d{2})\.zip"')


@pytest.fixture
def completed(app, staff_study) -> dict[str, int]:
    """The first time point of UPP-001 and HEL-001, answered in full and completed today."""
    out = {}
    with app.app_context():
        session = db.session
        registry = app.extensions["instruments"]
        now = utcnow()
        for study_id in ("UPP-001", "HEL-001"):
            patient = session.get(Patient, staff_study.patients[study_id])
            assessment = patient.assessments[0]
            assessment.status = AssessmentStatus.OPEN.value
            assessment.opened_at = now
            issue_token(assessment, app.extensions["vault"])
            for instrument in instruments_of(assessment, registry):
                answers = {number: item.codes[0] for number, item in instrument.items.items()}
                save_answers(
                    session,
                    now=now,
                    assessment=assessment,
                    instrument=instrument,
                    language=patient.language,
                    answers=answers,
                )
            assert complete_assessment(
                session,
                now=now,
                assessment=assessment,
                registry=registry,
                language=patient.language,
                actor=Actor("patient", str(patient.id)),
            )
            out[study_id] = assessment.id
        session.commit()
        session.close()
    return out


@pytest.fixture
def dm_upp(app, staff_study):
    """A data manager for SE-UPP only, signed in."""
    with app.app_context():
        create_user(
            db.session,
            now=utcnow(),
            actor=Actor.operator(),
            email="dm.upp@example.org",
            password=PASSWORD,
            role="data_manager",
            sites=[db.session.get(Site, staff_study.sites["SE-UPP"])],
            language="en",
        )
        db.session.commit()
        db.session.close()
    client = app.test_client()
    assert sign_in_with_password(client, "dm.upp@example.org").status_code == 302
    return client


def _post(client, **fields):
    form = client.get("/staff/exports")
    assert form.status_code == 200
    return client.post("/staff/exports", data={"csrf_token": csrf_of(form.text), **fields})


def _unzip(response) -> dict[str, bytes]:
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    return {name: archive.read(name) for name in archive.namelist()}


def _csv(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8"))))


def _downloads(app) -> list[tuple[str | None, dict]]:
    return read(
        app,
        lambda s: [
            (actor_id, after)
            for actor_id, after in s.execute(
                select(AuditEvent.actor_id, AuditEvent.after).where(
                    AuditEvent.action == "export.downloaded"
                )
            )
        ],
    )


def test_a_data_manager_downloads_a_streamed_zip_with_data_and_dictionary(
    app, sign_in, staff_study, completed
):
    client = sign_in("data_manager")
    response = _post(client, fmt="wide", completed_only="y")
    assert response.status_code == 200
    assert response.is_streamed
    assert response.mimetype == "application/zip"
    fmt, day = NAME.fullmatch(response.headers["Content-Disposition"]).groups()
    assert fmt == "wide"
    # the audit event is committed before the first byte is sent
    assert _downloads(app) == [
        (
            str(staff_study.users["data_manager"]),
            {
                "format": "wide",
                "filters": {
                    "sites": [],
                    "timepoints": [],
                    "instruments": [],
                    "from": None,
                    "to": None,
                    "completed_only": True,
                },
                "sites": None,
            },
        )
    ]
    files = _unzip(response)
    assert sorted(files) == [
        f"pro-export-wide-{day}.csv",
        f"pro-export-wide-{day}.csv.dictionary.csv",
    ]
    rows = _csv(files[f"pro-export-wide-{day}.csv"])
    assert sorted((r["study_id"], r["site"]) for r in rows) == [
        ("HEL-001", "FI-HEL"),
        ("UPP-001", "SE-UPP"),
    ]
    dictionary = _csv(files[f"pro-export-wide-{day}.csv.dictionary.csv"])
    assert {"study_id", "QL2", "q1"} <= {v["variable"] for v in dictionary}
    for body in (response.data, *files.values()):
        for phone in PHONES:
            assert phone.encode() not in body


def test_a_site_bound_data_manager_exports_only_her_site(app, dm_upp, staff_study, completed):
    form = dm_upp.get("/staff/exports")
    assert '<option value="SE-UPP">' in form.text
    assert "FI-HEL" not in form.text
    files = _unzip(_post(dm_upp, fmt="long"))
    data = next(v for k, v in files.items() if not k.endswith(".dictionary.csv"))
    rows = _csv(data)
    assert rows and {r["site"] for r in rows} == {"SE-UPP"}
    assert [after["sites"] for _actor, after in _downloads(app)] == [[staff_study.sites["SE-UPP"]]]

    refused = _post(dm_upp, fmt="long", site="FI-HEL")
    assert refused.status_code == 400
    assert refused.mimetype == "text/html"
    assert re.search(r'id="site-errors">\s*<li>Not a valid choice', refused.text)
    assert len(_downloads(app)) == 1  # only the first download was recorded


@pytest.mark.parametrize("persona", ["nurse_upp", "investigator", "investigator_upp"])
def test_nurses_and_investigators_cannot_export(app, sign_in, completed, persona):
    client = sign_in(persona)
    assert client.get("/staff/exports").status_code == 404
    home = client.get("/staff/", follow_redirects=True)
    assert "/staff/exports" not in home.text
    response = client.post("/staff/exports", data={"csrf_token": csrf_of(home.text), "fmt": "wide"})
    assert response.status_code == 404
    assert _downloads(app) == []


def test_an_upside_down_date_range_is_shown_next_to_the_end_date(app, sign_in, completed):
    response = _post(sign_in("admin"), fmt="wide", date_from="2026-03-02", date_to="2026-03-01")
    assert response.status_code == 400
    assert re.search(
        r'id="date_to-errors">\s*<li>The end date is before the start date.</li>', response.text
    )
    assert 'value="2026-03-02"' in response.text  # the form keeps what was entered
    assert _downloads(app) == []


def test_a_filter_that_matches_nothing_downloads_the_header_only(app, sign_in, completed):
    tomorrow = (utcnow() + timedelta(days=2)).date().isoformat()
    response = _post(sign_in("data_manager"), fmt="wide", date_from=tomorrow, completed_only="y")
    assert response.status_code == 200
    files = _unzip(response)
    data = next(v for k, v in files.items() if not k.endswith(".dictionary.csv"))
    lines = data.decode("utf-8").splitlines()
    assert len(lines) == 1 and lines[0].startswith("study_id,")
    assert len(_csv(next(v for k, v in files.items() if k.endswith(".dictionary.csv")))) > 50
    assert _downloads(app)[0][1]["filters"]["from"] == tomorrow


def test_filters_narrow_the_export(app, sign_in, completed):
    client = sign_in("admin")
    files = _unzip(_post(client, fmt="long", site="FI-HEL", instrument="qlq-pan26"))
    rows = _csv(next(v for k, v in files.items() if not k.endswith(".dictionary.csv")))
    assert {r["study_id"] for r in rows} == {"HEL-001"}
    assert {r["instrument"] for r in rows} == {"qlq-pan26"}


def test_an_admin_downloads_spss_and_fhir(app, sign_in, completed, tmp_path):
    client = sign_in("admin")
    sav = _unzip(_post(client, fmt="sav", completed_only="y"))
    (name,) = [k for k in sav if k.endswith(".sav")]
    path = tmp_path / name
    path.write_bytes(sav[name])
    frame, meta = pyreadstat.read_sav(str(path))
    assert sorted(frame["study_id"]) == ["HEL-001", "UPP-001"]
    assert meta.column_labels

    fhir = _unzip(_post(client, fmt="fhir"))
    (name,) = [k for k in fhir if k.endswith(".ndjson")]
    resources = [json.loads(line) for line in fhir[name].decode().splitlines()]
    kinds = {r["resourceType"] for r in resources}
    assert kinds == {"Questionnaire", "QuestionnaireResponse", "Observation"}
    for files in (sav, fhir):
        for body in files.values():
            for phone in PHONES:
                assert phone.encode() not in body


def test_by_default_every_expected_time_point_is_exported_with_its_status(
    app, sign_in, staff_study, completed
):
    files = _unzip(_post(sign_in("data_manager"), fmt="wide"))
    rows = _csv(next(v for k, v in files.items() if not k.endswith(".dictionary.csv")))
    states = {(r["study_id"], r["timepoint"]): r["status"] for r in rows}
    assert sorted(k[0] for k, state in states.items() if state == "complete") == [
        "HEL-001",
        "UPP-001",
    ]
    # UPP-002's time points exist, none answered; its m24 is far ahead.
    assert states[("UPP-002", "m24")] == "not_yet_due"
    assert {r["mode"] for r in rows if r["status"] == "complete"} == {"electronic"}
    assert all(r["completed_at"] == "" for r in rows if r["status"] != "complete")
    assert _downloads(app)[0][1]["filters"]["completed_only"] is False
