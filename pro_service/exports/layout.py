"""The variables of each export: names, labels, types and allowed codes.

One description serves the CSV header, the SPSS/Stata variable and value labels and the data
dictionary written alongside every export, so they can never disagree.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Literal

from ..instruments import ALGORITHM_VERSION, Instrument

VariableType = Literal["string", "integer", "number", "datetime"]
LABEL_LANGUAGE = "en"


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    type: VariableType
    instrument: str = ""  # "qlq-c30" for items and scales
    codes: dict[int, str] = field(default_factory=dict)  # allowed code -> meaning
    notes: str = ""


#: Said of every text variable a person typed: how a CSV keeps spreadsheets from running it.
FORMULA_NOTE = (
    "in CSV, text starting with = + - @, a tab or a carriage return is written with a leading '"
    " so that spreadsheets do not run it as a formula (OWASP); sav, dta and FHIR hold it as stored"
)
STUDY_ID = Variable("study_id", "Study ID (pseudonymous)", "string", notes=FORMULA_NOTE)
SITE = Variable("site", "Site code", "string", notes=FORMULA_NOTE)
TIMEPOINT = Variable("timepoint", "Time point (key in the study schedule)", "string")
DAYS = Variable(
    "days_from_surgery",
    "Days from surgery to completion",
    "integer",
    notes=(
        "local completion date at the site minus the surgery date; empty if not operated or "
        "not completed"
    ),
)
COMPLETED = Variable(
    "completed_at",
    "Completed at (UTC)",
    "datetime",
    notes="ISO 8601 in CSV and FHIR; empty when not completed",
)
LANGUAGE = Variable("language", "Language of the answers", "string", notes="sv, fi or en")
STATUS = Variable(
    "status",
    "State of the time point",
    "string",
    notes=(
        "complete = answered and submitted (by the patient, or entered by a nurse); partial = "
        "the window closed with answers but no final submit, scored by the half rule; missed = "
        "the window closed without answers (see missing_reason); open = the window is open; "
        "not_yet_due = the window has not opened; not_expected = cancelled, the patient had "
        "died, withdrawn or was not operated before its window. Only complete and partial rows "
        "hold scores and answers"
    ),
)
MISSING_REASON = Variable(
    "missing_reason",
    "Why a missed time point has no answers",
    "string",
    notes="a code of questionnaires/missing-reasons.yaml; empty until a nurse records one",
)
MODE = Variable(
    "mode",
    "How the answers were collected",
    "string",
    notes=(
        "electronic = the patient on their own link; paper = a paper form entered by a nurse "
        "(completed_at is noon, site time, of the date on the form when entered on a later "
        "day); telephone = read out by a nurse; empty when nothing was answered"
    ),
)
REVIEW_FLAG = Variable(
    "review_flag",
    "For review",
    "string",
    notes=(
        "outside_window = a moved anchor date (surgery) puts the answers of this completed or "
        "partial time point outside its window, e.g. a 'before surgery' form answered after the "
        "new surgery date; the answers are kept as given. Empty: nothing to review"
    ),
)
#: The columns every table has after the completion time, in this order.
STATE_VARIABLES = (STATUS, MISSING_REASON, MODE, REVIEW_FLAG)
ALGORITHM = Variable(
    "algorithm_version",
    "Scoring algorithm version",
    "string",
    notes=f"current: {ALGORITHM_VERSION}; re-score with `pro-service rescore`",
)


def latest_first_seen(instruments: Sequence[Instrument]) -> list[Instrument]:
    """One instrument per id (its newest version), keeping the item order."""
    newest: dict[str, Instrument] = {}
    for instrument in instruments:  # versions come in ascending order
        newest[instrument.id] = instrument
    return list(newest.values())


def scale_name(instrument: Instrument, code: str) -> str:
    for scale in instrument.scales:
        if scale.code == code:
            return scale.name[LABEL_LANGUAGE]
    for summary in instrument.summary_scores:
        if summary.code == code:
            return summary.name[LABEL_LANGUAGE]
    return code


def scale_direction(instrument: Instrument, code: str) -> str:
    """Which way is better on a scale, for the data dictionary; an unsettled direction says so."""
    for summary in instrument.summary_scores:
        if summary.code == code:
            return "higher is better (summary score)"
    for scale in instrument.scales:
        if scale.code != code:
            continue
        if scale.type == "symptom":
            note = "higher is worse (more symptoms or problems)"
        else:
            note = "higher is better (better functioning, greater satisfaction)"
        if not scale.direction_verified:
            formula = (
                "(RS-1)/range*100, so 'very much' scores high"
                if scale.transform == "symptom"
                else "the functional formula (1-(RS-1)/range)*100, so 'very much' scores low"
            )
            note += (
                "; DIRECTION NOT VERIFIED: the EORTC scoring instructions contradict each other "
                f"on this scale (a known open point in the manual). Items {_items(scale.items)} "
                f"are scored with {formula}. Confirm against the licensed form before analysis"
            )
        return note
    return ""


def _items(numbers: Sequence[int]) -> str:
    return " and ".join(str(n) for n in numbers) if len(numbers) <= 2 else str(list(numbers))


def instrument_title(instrument: Instrument) -> str:
    return instrument.name[LABEL_LANGUAGE]


def item_codes(instrument: Instrument, number: int) -> dict[int, str]:
    item = instrument.item(number)
    return {code: item.labels[code][LABEL_LANGUAGE] for code in item.codes}


def version_variable(instrument_id: str) -> str:
    return instrument_id.replace("-", "_") + "_version"


@dataclass(frozen=True)
class WideLayout:
    """The wide table: one row per patient x time point."""

    instruments: tuple[Instrument, ...]  # newest version of each selected instrument
    versions: tuple[Variable, ...]
    scores: tuple[tuple[str, Variable], ...]  # (instrument id, variable named after the scale)
    items: tuple[tuple[int, Variable], ...]  # (item number, variable q<n>)

    @property
    def variables(self) -> list[Variable]:
        return [
            STUDY_ID,
            SITE,
            TIMEPOINT,
            DAYS,
            COMPLETED,
            *STATE_VARIABLES,
            LANGUAGE,
            *self.versions,
            ALGORITHM,
            *(v for _, v in self.scores),
            *(v for _, v in self.items),
        ]

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variables]


def wide_layout(instruments: Sequence[Instrument]) -> WideLayout:
    newest = latest_first_seen(instruments)
    versions = tuple(
        Variable(
            version_variable(i.id),
            f"{instrument_title(i)} version",
            "string",
            instrument=i.id,
        )
        for i in newest
    )
    scores: dict[str, tuple[str, Variable]] = {}
    items: dict[int, tuple[int, Variable]] = {}
    # Every version contributes its scales and items; the newest one names them.
    for instrument in sorted(instruments, key=lambda i: i.first_item):
        for code in instrument.score_codes:
            scores[code] = (
                instrument.id,
                Variable(
                    code,
                    f"{instrument_title(instrument)}: {scale_name(instrument, code)} (0-100)",
                    "number",
                    instrument=instrument.id,
                    notes=scale_direction(instrument, code),
                ),
            )
        for number in instrument.items:
            items[number] = (
                number,
                Variable(
                    f"q{number}",
                    f"{number}. {instrument.item_text(number, LABEL_LANGUAGE)}",
                    "integer",
                    instrument=instrument.id,
                    codes=item_codes(instrument, number),
                ),
            )
    return WideLayout(
        instruments=tuple(newest),
        versions=versions,
        scores=tuple(scores.values()),
        items=tuple(sorted(items.values())),
    )


def long_variables(instruments: Sequence[Instrument]) -> list[Variable]:
    scale_meanings: dict[str, str] = {}
    for instrument in instruments:
        for code in instrument.score_codes:
            scale_meanings[code] = (
                f"{instrument_title(instrument)}: {scale_name(instrument, code)}, "
                f"{scale_direction(instrument, code)}"
            )
    return [
        STUDY_ID,
        SITE,
        TIMEPOINT,
        DAYS,
        COMPLETED,
        *STATE_VARIABLES,
        Variable(
            "instrument",
            "Instrument",
            "string",
            notes=", ".join(_ids(instruments)) + "; empty on the one row of a time point without "
            "scores (not complete or partial), as are the columns after it",
        ),
        Variable("version", "Instrument version", "string"),
        LANGUAGE,
        Variable(
            "scale",
            "Scale",
            "string",
            notes="; ".join(f"{code} = {meaning}" for code, meaning in scale_meanings.items()),
        ),
        Variable("score", "Score (0-100, unrounded; empty when not computable)", "number"),
        Variable("items_in_scale", "Items in the scale (components, for a summary)", "integer"),
        Variable("items_answered", "Items answered (components scored, for a summary)", "integer"),
        ALGORITHM,
    ]


def _ids(instruments: Sequence[Instrument]) -> list[str]:
    return list(dict.fromkeys(i.id for i in instruments))


DICTIONARY_HEADER = ("variable", "label", "type", "instrument", "allowed_codes", "notes")


def write_dictionary(out: IO[str], variables: Sequence[Variable]) -> None:
    """The data dictionary as CSV: one row per variable, codes as ``1=Not at all; 2=...``."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(DICTIONARY_HEADER)
    for v in variables:
        codes = "; ".join(f"{code}={meaning}" for code, meaning in v.codes.items())
        writer.writerow((v.name, v.label, v.type, v.instrument, codes, v.notes))
