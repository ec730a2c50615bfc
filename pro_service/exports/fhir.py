"""FHIR R4 resources as NDJSON: Questionnaires, QuestionnaireResponses and score Observations.

Resources are built as plain JSON objects (fast, and streamed one line at a time); the test
suite validates every one with the ``fhir.resources`` models. Only R4 elements are used, so the
lines are valid R4 (4.0.1) and R4B (4.3.0) alike.

- One ``Questionnaire`` per instrument version, its items with ``answerOption`` codings that
  carry the instrument's own response codes.
- One ``QuestionnaireResponse`` per completed assessment and instrument (a FHIR response answers
  exactly one questionnaire; an assessment holds two): answered items only, and how they were
  collected (the patient's own link, a paper form, the telephone) in HL7's
  ``questionnaireresponse-completionMode`` extension.
- One ``Observation`` per scale score, ``valueQuantity`` in unit "score", ``derivedFrom`` its
  QuestionnaireResponse; a score the half rule leaves missing has a ``dataAbsentReason``.

Patients are named only by their pseudonymous study ID (a logical reference by identifier);
there is no Patient resource and no phone number.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import IO, Any

from ..instruments import Instrument
from ..models import AnswerMode
from .layout import LABEL_LANGUAGE, instrument_title, scale_name
from .source import ExportedAssessment
from .tables import iso_utc

Resource = dict[str, Any]

SURVEY_CATEGORY = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "survey",
            "display": "Survey",
        }
    ]
}
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
COMPLETION_MODE = "http://hl7.org/fhir/StructureDefinition/questionnaireresponse-completionMode"
#: How the answers were collected -> its code in the extension's required value set
#: (QuestionnaireResponseMode, from v3 ParticipationMode): the patient's own link is electronic
#: data, a paper form is written, the telephone is verbal.
PARTICIPATION_MODE = {
    AnswerMode.ELECTRONIC.value: ("ELECTRONIC", "electronic data"),
    AnswerMode.PAPER.value: ("WRITTEN", "written"),
    AnswerMode.TELEPHONE.value: ("VERBAL", "verbal"),
}


def fhir_id(*parts: object) -> str:
    """A valid FHIR id (``[A-Za-z0-9-.]{1,64}``) from the parts."""
    text = "-".join(str(p) for p in parts)
    return re.sub(r"[^A-Za-z0-9.-]", "-", text)[:64]


class FhirNames:
    """The canonical URLs and identifier systems, all under the service's own address."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/") + "/fhir"

    def questionnaire_url(self, instrument: Instrument) -> str:
        return f"{self.base}/Questionnaire/{instrument.id}"

    def answers_system(self, instrument: Instrument, response_set: str) -> str:
        return f"{self.base}/CodeSystem/{instrument.id}-{response_set}"

    def scales_system(self, instrument: Instrument) -> str:
        return f"{self.base}/CodeSystem/{instrument.id}-scales"

    @property
    def study_id_system(self) -> str:
        return f"{self.base}/NamingSystem/study-id"

    @property
    def assessment_system(self) -> str:
        return f"{self.base}/NamingSystem/assessment"


def questionnaire(instrument: Instrument, names: FhirNames) -> Resource:
    items = []
    for number, item in instrument.items.items():
        system = names.answers_system(instrument, item.response_set)
        items.append(
            {
                "linkId": f"q{number}",
                "prefix": f"{number}.",
                "text": instrument.item_text(number, LABEL_LANGUAGE),
                "type": "choice",
                "answerOption": [
                    {
                        "valueCoding": {
                            "system": system,
                            "code": str(code),
                            "display": item.labels[code][LABEL_LANGUAGE],
                        }
                    }
                    for code in item.codes
                ],
            }
        )
    return {
        "resourceType": "Questionnaire",
        "id": fhir_id(instrument.id, instrument.version),
        "url": names.questionnaire_url(instrument),
        "version": instrument.version,
        "name": re.sub(r"[^A-Za-z0-9_]", "_", instrument.id.upper()),
        "title": instrument_title(instrument),
        "status": "active",
        "language": LABEL_LANGUAGE,
        "subjectType": ["Patient"],
        "item": items,
    }


def _subject(a: ExportedAssessment, names: FhirNames) -> Resource:
    return {"identifier": {"system": names.study_id_system, "value": a.study_id}}


#: A time point's reported state -> its QuestionnaireResponse's status (FHIR R4). Partial: the
#: patient answered part and never submitted, "stopped" ("partially filled out with answers but
#: has been abandoned"). A time point without answers (missed, not yet due, not expected, open
#: and not started) has no QuestionnaireResponse.
RESPONSE_STATUS = {"complete": "completed", "partial": "stopped", "open": "in-progress"}


def has_response(a: ExportedAssessment) -> bool:
    """Whether the time point has a QuestionnaireResponse: answers were given."""
    status = RESPONSE_STATUS.get(a.state)
    return status is not None and (status != "in-progress" or bool(a.answers))


def _completion_mode(mode: str) -> list[Resource]:
    """A response's ``extension`` list naming how its answers were collected (``mode``: an
    :class:`~pro_service.models.AnswerMode`); made afresh for each response."""
    code, display = PARTICIPATION_MODE[mode]
    system = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
    coding = {"system": system, "code": code, "display": display}
    return [{"url": COMPLETION_MODE, "valueCodeableConcept": {"coding": [coding]}}]


def assessment_resources(a: ExportedAssessment, names: FhirNames) -> Iterator[Resource]:
    if not has_response(a):
        return
    status = RESPONSE_STATUS[a.state]
    authored = None if a.completed_at is None else iso_utc(a.completed_at)
    for instrument in a.instruments:
        response_id = fhir_id("qr", a.assessment_id, instrument.id)
        answered = []
        for number, item in instrument.items.items():
            code = a.answers.get(number)
            if code is None:
                continue
            answered.append(
                {
                    "linkId": f"q{number}",
                    "answer": [
                        {
                            "valueCoding": {
                                "system": names.answers_system(instrument, item.response_set),
                                "code": str(code),
                                "display": item.labels[code][LABEL_LANGUAGE],
                            }
                        }
                    ],
                }
            )
        response: Resource = {
            "resourceType": "QuestionnaireResponse",
            "id": response_id,
            **({"extension": _completion_mode(a.mode)} if a.mode else {}),
            "identifier": {
                "system": names.assessment_system,
                "value": f"{a.study_id}/{a.timepoint}/{instrument.id}",
            },
            "questionnaire": f"{names.questionnaire_url(instrument)}|{instrument.version}",
            "status": status,
            "subject": _subject(a, names),
        }
        if authored is not None:
            response["authored"] = authored
        language = a.answer_language.get(instrument.id, a.language)
        if language:
            response["language"] = language
        if answered:
            response["item"] = answered
        yield response

        for score in a.scores:
            if score.instrument_id != instrument.id:
                continue
            observation: Resource = {
                "resourceType": "Observation",
                "id": fhir_id("obs", a.assessment_id, score.scale.lower()),
                "status": "final",
                "category": [SURVEY_CATEGORY],
                "code": {
                    "coding": [
                        {
                            "system": names.scales_system(instrument),
                            "code": score.scale,
                            "display": scale_name(instrument, score.scale),
                        }
                    ]
                },
                "subject": _subject(a, names),
                "method": {"text": f"EORTC scoring, algorithm {score.algorithm_version}"},
                "derivedFrom": [{"reference": f"QuestionnaireResponse/{response_id}"}],
            }
            if authored is not None:
                observation["effectiveDateTime"] = authored
            if score.value is None:
                observation["dataAbsentReason"] = {
                    "coding": [{"system": DATA_ABSENT, "code": "as-text"}],
                    "text": (
                        f"not computable: {score.items_answered} of {score.items_in_scale} "
                        "answered (EORTC half rule)"
                    ),
                }
            else:
                observation["valueQuantity"] = {
                    "value": score.value,
                    "unit": "score",
                    "system": "http://unitsofmeasure.org",
                    "code": "{score}",
                }
            yield observation


def fhir_resources(
    instruments: Iterable[Instrument], assessments: Iterable[ExportedAssessment], base_url: str
) -> Iterator[Resource]:
    names = FhirNames(base_url)
    for instrument in instruments:
        yield questionnaire(instrument, names)
    for a in assessments:
        yield from assessment_resources(a, names)


def write_ndjson(out: IO[str], resources: Iterable[Resource]) -> int:
    """One resource per line; returns how many QuestionnaireResponses were written."""
    responses = 0
    for resource in resources:
        out.write(json.dumps(resource, ensure_ascii=False, separators=(",", ":")))
        out.write("\n")
        responses += resource["resourceType"] == "QuestionnaireResponse"
    return responses
