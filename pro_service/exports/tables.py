"""The long and wide tables, row by row: typed for SPSS and Stata, as text for CSV."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import IO, Generic, TypeVar

from ..instruments.csv_dialect import formula_safe
from .layout import WideLayout
from .source import ExportedAssessment

Cell = str | int | float | datetime | None
T = TypeVar("T")


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _common(a: ExportedAssessment) -> tuple[Cell, ...]:
    return (
        a.study_id,
        a.site,
        a.timepoint,
        a.days_from_surgery,
        a.completed_at,
        a.state,
        a.missing_reason,
        a.mode,
        a.review_flag,
    )


class _WideCells:
    """What a wide row takes from one assessment, in column order (typed; None = missing)."""

    def __init__(self, layout: WideLayout) -> None:
        self.version_ids = [v.instrument for v in layout.versions]
        self.score_codes = [v.name for _, v in layout.scores]
        self.item_numbers = [n for n, _ in layout.items]

    def of(
        self, a: ExportedAssessment
    ) -> tuple[list[str | None], str | None, list[float | None], list[int | None]]:
        """(instrument versions, algorithm versions joined by ";", scores, item codes)."""
        versions = {i.id: i.version for i in a.instruments}
        values = {s.scale: s.value for s in a.scores}
        algorithms = ";".join(sorted({s.algorithm_version for s in a.scores})) or None
        answers = a.answers
        return (
            [versions.get(i) for i in self.version_ids],
            algorithms,
            [values.get(code) for code in self.score_codes],
            [answers.get(n) for n in self.item_numbers],
        )


def wide_rows(
    layout: WideLayout, assessments: Iterable[ExportedAssessment]
) -> Iterator[tuple[Cell, ...]]:
    """One row per patient x time point: versions, every score, then every raw item."""
    cells = _WideCells(layout)
    for a in assessments:
        versions, algorithms, scores, items = cells.of(a)
        yield (*_common(a), a.language, *versions, algorithms, *scores, *items)


# The CSV tables, formatted as the rows are built: empty for missing, floats by number_text,
# times as ISO 8601 UTC; each assessment's common cells are formatted once, not once per
# scale, and no function is called per cell but for scores.


def number_text(value: float) -> str:
    """The shortest text that reads back as exactly ``value``, without a trailing ".0"

    (``50``, ``33.333333333333336``), as PostgreSQL writes a double.
    """
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def _csv_common(a: ExportedAssessment) -> tuple[str | int, ...]:
    days = a.days_from_surgery
    return (
        formula_safe(a.study_id),
        formula_safe(a.site),
        a.timepoint,  # a key of the schedule file: lower-case letters, digits and _
        "" if days is None else days,
        "" if a.completed_at is None else iso_utc(a.completed_at),
        a.state,
        a.missing_reason or "",  # a code of missing-reasons.yaml: letters, digits and -
        a.mode or "",
        a.review_flag or "",
    )


def long_csv_rows(assessments: Iterable[ExportedAssessment]) -> Iterator[tuple[str | int, ...]]:
    for a in assessments:
        common = _csv_common(a)
        languages = a.answer_language
        fallback = a.language or ""
        if not a.scores:  # a time point without scores: one row saying its state
            yield (*common, "", "", "", "", "", "", "", "")  # the score columns, empty
            continue
        for s in a.scores:
            value = s.value
            yield (
                *common,
                s.instrument_id,
                s.instrument_version,
                languages.get(s.instrument_id) or fallback,
                s.scale,
                "" if value is None else number_text(value),
                s.items_in_scale,
                s.items_answered,
                s.algorithm_version,
            )


def wide_csv_rows(
    layout: WideLayout, assessments: Iterable[ExportedAssessment]
) -> Iterator[list[str | int]]:
    cells = _WideCells(layout)
    for a in assessments:
        versions, algorithms, scores, items = cells.of(a)
        yield [
            *_csv_common(a),
            a.language or "",
            *(v or "" for v in versions),
            algorithms or "",
            *("" if v is None else number_text(v) for v in scores),
            *("" if c is None else c for c in items),
        ]


def write_csv_rows(out: IO[str], header: list[str], rows: Iterable[Sequence[str | int]]) -> int:
    """Write the header and rows already formatted as CSV cells; returns the number of rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    counted = Counted(rows)
    writer.writerows(counted)
    return counted.count


class Counted(Generic[T]):
    """``source`` passed through, counting the items as they go by."""

    def __init__(self, source: Iterable[T]) -> None:
        self.source = source
        self.count = 0

    def __iter__(self) -> Iterator[T]:
        for item in self.source:
            self.count += 1
            yield item
