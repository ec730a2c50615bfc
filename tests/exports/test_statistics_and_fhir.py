"""SPSS, Stata and FHIR exports: same values, labels and codes as the stored data."""

from __future__ import annotations

import json
import math

import pyreadstat
import pytest
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

# fhir.resources checks structure and types but not the codes of required value-set bindings,
# so the bound codes the export uses are checked against the R4 value sets here.
REQUIRED_CODES = {
    ("Questionnaire", "status"): {"draft", "active", "retired", "unknown"},
    ("QuestionnaireResponse", "status"): {
        "in-progress",
        "completed",
        "amended",
        "entered-in-error",
        "stopped",
    },
    ("Observation", "status"): {
        "registered",
        "preliminary",
        "final",
        "amended",
        "corrected",
        "cancelled",
        "entered-in-error",
        "unknown",
    },
}
ITEM_TYPES = {"group", "display", "boolean", "decimal", "integer", "date", "dateTime", "time"}
ITEM_TYPES |= {"string", "text", "url", "choice", "open-choice", "attachment", "reference"}
ITEM_TYPES |= {"quantity"}

FHIR_MODELS = {
    "Questionnaire": Questionnaire,
    "QuestionnaireResponse": QuestionnaireResponse,
    "Observation": Observation,
}


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@pytest.mark.parametrize("fmt", ["sav", "dta"])
def test_spss_and_stata_files_read_back_with_the_same_values_and_labels(
    fmt, app, session, study, export, helpers
):
    path = export(fmt)
    reader = pyreadstat.read_sav if fmt == "sav" else pyreadstat.read_dta
    frame, meta = reader(str(path))
    wide = helpers.read_csv(export("wide"))
    assert list(frame.columns) == list(wide[0])
    assert len(frame) == len(wide) == len(study.assessment_ids)
    for record in frame.to_dict("records"):
        assessment_id = study.assessment_ids[(record["study_id"], record["timepoint"])]
        for scale, value in helpers.engine_scores(assessment_id).items():
            if value is None:
                assert _missing(record[scale]), scale
            else:
                assert record[scale] == value, scale  # bit for bit
        answers = helpers.answers(assessment_id)
        for n in range(1, 57):
            got = record[f"q{n}"]
            assert (None if _missing(got) else int(got)) == answers.get(n), n
    labels = meta.column_names_to_labels
    assert labels["study_id"] == "Study ID (pseudonymous)"
    assert labels["QL2"].startswith("EORTC QLQ-C30")
    assert labels["q1"].startswith("1. ")
    q1_labels = {int(k): v for k, v in meta.variable_value_labels["q1"].items()}
    assert q1_labels == {1: "Not at all", 2: "A little", 3: "Quite a bit", 4: "Very much"}
    assert set(meta.variable_value_labels["q29"]) == {1, 2, 3, 4, 5, 6, 7}


@pytest.mark.parametrize("fmt", ["sav", "dta"])
def test_a_filter_matching_nothing_gives_a_statistics_file_with_variables_and_no_rows(
    fmt, study, export
):
    path = export(fmt, timepoints=("m24",))
    reader = pyreadstat.read_sav if fmt == "sav" else pyreadstat.read_dta
    frame, meta = reader(str(path))
    assert len(frame) == 0
    assert "q56" in frame.columns
    assert meta.column_names_to_labels["PF2"].startswith("EORTC QLQ-C30")


def test_every_fhir_resource_validates_and_carries_the_stored_scores_and_answers(
    study, export, helpers
):
    lines = export("fhir").read_text(encoding="utf-8").splitlines()
    resources = [json.loads(line) for line in lines]
    for resource in resources:
        FHIR_MODELS[resource["resourceType"]].model_validate(resource)  # raises when invalid
        assert resource["status"] in REQUIRED_CODES[(resource["resourceType"], "status")]
        for item in resource.get("item", []) if resource["resourceType"] == "Questionnaire" else []:
            assert item["type"] in ITEM_TYPES

    questionnaires = [r for r in resources if r["resourceType"] == "Questionnaire"]
    assert [(q["url"].rsplit("/", 1)[1], q["version"]) for q in questionnaires] == [
        ("qlq-c30", "3.0"),
        ("qlq-pan26", "1.0"),
    ]
    q1 = questionnaires[0]["item"][0]
    assert [o["valueCoding"]["code"] for o in q1["answerOption"]] == ["1", "2", "3", "4"]

    responses = {r["id"]: r for r in resources if r["resourceType"] == "QuestionnaireResponse"}
    assert len(responses) == 2 * len(study.assessment_ids)  # one per instrument
    observations = [r for r in resources if r["resourceType"] == "Observation"]
    for (study_id, timepoint), assessment_id in study.assessment_ids.items():
        answers = helpers.answers(assessment_id)
        mine = [r for r in responses.values() if r["id"].startswith(f"qr-{assessment_id}-")]
        assert {r["subject"]["identifier"]["value"] for r in mine} == {study_id}
        exported = {
            int(item["linkId"][1:]): int(item["answer"][0]["valueCoding"]["code"])
            for r in mine
            for item in r.get("item", [])
        }
        assert exported == answers
        scores = {
            o["code"]["coding"][0]["code"]: o.get("valueQuantity", {}).get("value")
            for o in observations
            if o["derivedFrom"][0]["reference"].removeprefix("QuestionnaireResponse/")
            in {r["id"] for r in mine}
        }
        assert scores == helpers.engine_scores(assessment_id), (study_id, timepoint)
    missing = [o for o in observations if "valueQuantity" not in o]
    assert missing and all(o["dataAbsentReason"]["coding"][0]["code"] == "as-text" for o in missing)
    assert all(o["valueQuantity"]["unit"] == "score" for o in observations if o not in missing)
