"""Exports hold every expected time point with its state, missing reason and mode: complete,
partial, missed (with its reason), open, not yet due, not expected; a paper entry says so; an
option keeps the completed ones only. The PostgreSQL COPY and pivot paths give the Python path's
bytes on this data too; FHIR carries the matching QuestionnaireResponse status."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pyreadstat
import pytest
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from sqlalchemy import select

from pro_service.answering.entry import enter_answers
from pro_service.answering.responses import instruments_of, save_answers, score_partial
from pro_service.audit import Actor
from pro_service.exports import ExportFilters
from pro_service.exports.long_table import LongTable
from pro_service.exports.source import resolve_filters
from pro_service.exports.wide_table import WideTable
from pro_service.models import Assessment, Patient

from builders import move_surgery


def _assessment(session, study_id, timepoint):  # type: ignore[no-untyped-def]
    return session.scalars(
        select(Assessment)
        .join(Patient)
        .where(Patient.study_id == study_id, Assessment.timepoint == timepoint)
    ).one()


@pytest.fixture
def states(app, session, study, now):  # type: ignore[no-untyped-def]
    """The study, plus: UPP-001 m6 partial, UPP-002 m6 missed as too ill, UPP-001 m12 not
    expected, UPP-002 m9 entered from a paper form today (its window is open)."""
    registry = app.extensions["instruments"]
    partial = _assessment(session, "UPP-001", "m6")
    partial.status = "open"
    c30 = registry.get("qlq-c30")
    save_answers(
        session,
        now=now,
        assessment=partial,
        instrument=c30,
        language="sv",
        answers={1: 1, 2: 2, 3: 1, 4: 1, 5: 1, 29: 6, 30: 5},
    )
    partial.status = "partial"
    score_partial(session, now=now, assessment=partial, registry=registry)
    missed = _assessment(session, "UPP-002", "m6")
    missed.status = "expired"
    missed.missing_reason = "too-ill"
    _assessment(session, "UPP-001", "m12").status = "cancelled"
    paper = _assessment(session, "UPP-002", "m9")
    answers = {
        n: item.codes[-1]
        for instrument in instruments_of(paper, registry)
        for n, item in instrument.items.items()
    }
    enter_answers(
        session,
        now=now,
        actor=Actor.staff(1),
        assessment=paper,
        schedule=app.extensions["schedule"],
        registry=registry,
        mode="paper",
        language="en",
        answered_on=now.date(),
        answers=answers,
    )
    session.commit()
    return {"partial": partial.id, "paper": paper.id, "missed": missed.id}


def test_the_wide_table_has_a_row_for_every_time_point_with_its_state(states, export, helpers):
    rows = helpers.read_csv(export("wide", completed_only=False))
    by_key = {(r["study_id"], r["timepoint"]): r for r in rows}
    assert len(rows) == 17  # 8 + 8 time points, and HEL-001's baseline (no surgery date yet)
    assert {k: r["status"] for k, r in by_key.items() if k[0] == "UPP-001"} == {
        ("UPP-001", "baseline"): "complete",
        ("UPP-001", "preop"): "complete",
        ("UPP-001", "m3"): "complete",
        ("UPP-001", "m6"): "partial",
        ("UPP-001", "m9"): "not_yet_due",
        ("UPP-001", "m12"): "not_expected",
        ("UPP-001", "m18"): "not_yet_due",
        ("UPP-001", "m24"): "not_yet_due",
    }
    assert by_key[("UPP-002", "m3")]["status"] == "open"  # started, not submitted
    missed = by_key[("UPP-002", "m6")]
    assert (missed["status"], missed["missing_reason"], missed["mode"]) == (
        "missed",
        "too-ill",
        "",
    )
    assert missed["completed_at"] == "" and missed["QL2"] == "" and missed["q1"] == ""
    paper = by_key[("UPP-002", "m9")]
    assert (paper["status"], paper["mode"], paper["language"]) == ("complete", "paper", "en")
    assert paper["completed_at"].endswith("Z") and paper["q29"] == "7"
    assert by_key[("UPP-001", "baseline")]["mode"] == "electronic"
    # The partial time point: its answers and its half-rule scores, equal to the engine's.
    partial = by_key[("UPP-001", "m6")]
    assert partial["completed_at"] == ""
    assert partial["q29"] == "6" and partial["q6"] == ""
    for scale, value in helpers.engine_scores(states["partial"]).items():
        assert (None if partial[scale] == "" else float(partial[scale])) == value, scale
    assert partial["PF2"] != "" and partial["FA"] == ""


def test_the_long_table_gives_a_time_point_without_scores_one_row(states, export, helpers):
    rows = helpers.read_csv(export("long", completed_only=False))
    missed = [r for r in rows if (r["study_id"], r["timepoint"]) == ("UPP-002", "m6")]
    assert len(missed) == 1
    (row,) = missed
    assert (row["status"], row["missing_reason"], row["instrument"], row["scale"]) == (
        "missed",
        "too-ill",
        "",
        "",
    )
    partial = [r for r in rows if (r["study_id"], r["timepoint"]) == ("UPP-001", "m6")]
    assert {r["status"] for r in partial} == {"partial"} and len(partial) > 1  # one per scale
    assert {r["scale"] for r in partial} >= {"QL2", "PF2", "FA"}


def test_completed_only_keeps_the_completed_time_points(states, export, helpers):
    rows = helpers.read_csv(export("wide", completed_only=True))
    assert {r["status"] for r in rows} == {"complete"}
    assert len(rows) == 7  # the study's 6 and the paper form


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("completed_only", [False, True])
def test_copy_and_pivot_give_the_python_paths_bytes_for_every_state(
    completed_only, app, session, states
):
    registry = app.extensions["instruments"]
    for filters in (
        ExportFilters(completed_only=completed_only),
        ExportFilters(completed_only=completed_only, instruments=("qlq-pan26",)),
        ExportFilters(
            completed_only=completed_only, date_from=date(2025, 9, 1), date_to=date(2026, 3, 31)
        ),
    ):
        selection = resolve_filters(
            session, filters, registry=registry, schedule=app.extensions["schedule"]
        )
        for table in (LongTable, WideTable):
            by_copy = b"".join(table(session, selection, registry=registry))
            built = b"".join(table(session, selection, registry=registry, by_copy=False))
            assert by_copy == built, (table.__name__, filters)
            assert by_copy.count(b"\n") > 1


@pytest.mark.parametrize("fmt", ["sav", "dta"])
def test_spss_and_stata_carry_status_reason_and_mode(fmt, states, export):
    path = export(fmt, completed_only=False)
    reader = pyreadstat.read_sav if fmt == "sav" else pyreadstat.read_dta
    frame, meta = reader(str(path))
    assert len(frame) == 17
    rows = {(r.study_id, r.timepoint): r for r in frame.itertuples()}
    assert rows[("UPP-002", "m6")].status == "missed"
    assert rows[("UPP-002", "m6")].missing_reason == "too-ill"
    assert rows[("UPP-002", "m9")].mode == "paper"
    labels = dict(zip(meta.column_names, meta.column_labels, strict=True))
    assert labels["status"] == "State of the time point"


def test_fhir_responses_carry_the_matching_status(states, export):
    path = export("fhir", completed_only=False)
    resources = [json.loads(line) for line in path.read_text().splitlines()]
    models = {"Questionnaire": Questionnaire, "QuestionnaireResponse": QuestionnaireResponse}
    models["Observation"] = Observation
    for resource in resources:
        models[resource["resourceType"]].model_validate(resource)  # raises when invalid
    responses = [r for r in resources if r["resourceType"] == "QuestionnaireResponse"]
    by_key: dict[str, set[str]] = {}
    modes: dict[str, set[tuple[str, str] | None]] = {}
    for response in responses:
        study_id, timepoint, _instrument = response["identifier"]["value"].split("/")
        by_key.setdefault(f"{study_id}/{timepoint}", set()).add(response["status"])
        modes.setdefault(f"{study_id}/{timepoint}", set()).add(_completion_mode(response))
    assert by_key["UPP-001/m6"] == {"stopped"}  # partial: answered in part, never submitted
    assert by_key["UPP-002/m3"] == {"in-progress"}
    assert by_key["UPP-002/m9"] == {"completed"}
    assert "UPP-002/m6" not in by_key  # missed: no answers, no QuestionnaireResponse
    assert "UPP-001/m12" not in by_key
    # How the answers were collected, in HL7's completionMode extension: the paper form as
    # written, the patient's own link as electronic data; not yet known while still open.
    assert modes["UPP-002/m9"] == {("WRITTEN", "written")}
    assert modes["UPP-001/baseline"] == {("ELECTRONIC", "electronic data")}
    assert modes["UPP-002/m3"] == {None}


def _completion_mode(response: dict) -> tuple[str, str] | None:  # type: ignore[type-arg]
    """The completionMode extension's code and display, checked against its required value set
    (QuestionnaireResponseMode), or None when the response has none."""
    url = "http://hl7.org/fhir/StructureDefinition/questionnaireresponse-completionMode"
    found = [e for e in response.get("extension", []) if e["url"] == url]
    if not found:
        return None
    (extension,) = found
    (coding,) = extension["valueCodeableConcept"]["coding"]
    assert coding["system"] == "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
    assert coding["code"] in {"ELECTRONIC", "VERBAL", "WRITTEN"}
    return coding["code"], coding["display"]


def test_the_dictionary_explains_the_states_and_modes(states, export, helpers):
    path = export("wide", completed_only=False)
    dictionary = helpers.read_csv(path.with_name(path.name + ".dictionary.csv"))
    notes = {row["variable"]: row["notes"] for row in dictionary}
    for state in ("complete", "partial", "missed", "open", "not_yet_due", "not_expected"):
        assert f"{state} = " in notes["status"]
    assert "missing-reasons.yaml" in notes["missing_reason"]
    assert "paper = a paper form entered by a nurse" in notes["mode"]


def test_a_time_point_to_review_is_flagged_in_the_exports(app, session, study, export, helpers):
    patient = session.scalars(select(Patient).where(Patient.study_id == "UPP-001")).one()
    # Its "before surgery" form was answered on 26 May 2025; surgery moved to 20 May.
    move_surgery(
        app,
        session,
        patient,
        date(2025, 5, 20),
        now=datetime(2025, 6, 1, 9, 0, tzinfo=UTC),
        reason="operated earlier than planned",
    )
    for fmt in ("wide", "long"):
        rows = helpers.read_csv(export(fmt, name=f"r.{fmt}", completed_only=False))
        flagged = {(r["study_id"], r["timepoint"]) for r in rows if r["review_flag"]}
        assert flagged == {("UPP-001", "preop")}, fmt
        assert {r["review_flag"] for r in rows} == {"", "outside_window"}


@pytest.mark.parametrize(
    ("mode", "coded"),
    [
        ("electronic", ("ELECTRONIC", "electronic data")),
        ("paper", ("WRITTEN", "written")),
        ("telephone", ("VERBAL", "verbal")),
    ],
)
def test_every_answer_mode_has_its_fhir_completion_mode(mode, coded):
    """Each way of collecting answers (every one the service records) has its code of HL7's
    QuestionnaireResponseMode value set: the patient's link is electronic data, a paper form
    written, a telephone interview verbal."""
    from pro_service.exports.fhir import _completion_mode as extension_for
    from pro_service.models import AnswerMode

    assert {m.value for m in AnswerMode} == {"electronic", "paper", "telephone"}
    assert _completion_mode({"extension": extension_for(mode)}) == coded
