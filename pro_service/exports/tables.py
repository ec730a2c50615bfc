"""The long and wide tables, row by row, and their CSV files."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import IO

from .layout import WideLayout
from .source import ExportedAssessment

Cell = str | int | float | datetime | None


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _common(a: ExportedAssessment) -> tuple[Cell, ...]:
    return (a.study_id, a.site, a.timepoint, a.days_from_surgery, a.completed_at)


def long_rows(assessments: Iterable[ExportedAssessment]) -> Iterator[tuple[Cell, ...]]:
    """One row per patient x time point x scale, in the instruments' scale order."""
    for a in assessments:
        common = _common(a)
        for s in a.scores:
            language = a.answer_language.get(s.instrument_id, a.language)
            yield (
                *common,
                s.instrument_id,
                s.instrument_version,
                language,
                s.scale,
                s.value,
                s.items_in_scale,
                s.items_answered,
                s.algorithm_version,
            )


def wide_rows(
    layout: WideLayout, assessments: Iterable[ExportedAssessment]
) -> Iterator[tuple[Cell, ...]]:
    """One row per patient x time point: versions, every score, then every raw item."""
    score_codes = [v.name for _, v in layout.scores]
    item_numbers = [n for n, _ in layout.items]
    version_ids = [v.instrument for v in layout.versions]
    for a in assessments:
        versions = {i.id: i.version for i in a.instruments}
        values = {s.scale: s.value for s in a.scores}
        algorithms = sorted({s.algorithm_version for s in a.scores})
        yield (
            *_common(a),
            a.language,
            *(versions.get(i) for i in version_ids),
            ";".join(algorithms) or None,
            *(values.get(code) for code in score_codes),
            *(a.answers.get(n) for n in item_numbers),
        )


def csv_cell(value: Cell) -> str | int:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # shortest text that reads back as exactly the same float
    if isinstance(value, datetime):
        return iso_utc(value)
    return value


def write_csv(out: IO[str], header: list[str], rows: Iterable[tuple[Cell, ...]]) -> int:
    """Write the header and every row; returns the number of data rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    count = 0
    for row in rows:
        writer.writerow([csv_cell(c) for c in row])
        count += 1
    return count
