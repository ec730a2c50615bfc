"""The wide table as an SPSS ``.sav`` or Stata ``.dta`` file, with variable and value labels.

Both formats put, before the first row, facts that depend on every row: the number of rows,
and the width of each text variable. So the export goes in two passes, neither of which keeps
more than one batch of rows in memory:

1. the rows are read from the database and pickled to a temporary spool file in batches, while
   the row count and the widest UTF-8 value of each text column are tallied;
2. the spool is read back batch by batch and handed to the writer (:mod:`.spss` or
   :mod:`.stata`), which writes the file front to back.

Memory therefore stays flat whatever the number of assessments; the spool costs disk, about
the size of the wide CSV.
"""

from __future__ import annotations

import pickle
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Literal

from .columns import Column, StatCell
from .layout import Variable, WideLayout
from .spss import write_sav
from .stata import write_dta
from .tables import Cell

StatisticsFormat = Literal["sav", "dta"]
FILE_LABEL = "PRO Service export (wide)"
SPOOL_BATCH = 500  # rows pickled together


class _Tally:
    """The number of rows and the widest value (UTF-8 bytes) of each text column."""

    def __init__(self, variables: Sequence[Variable]) -> None:
        self.count = 0
        self.text_columns = [i for i, v in enumerate(variables) if v.type == "string"]
        self.widths = dict.fromkeys(self.text_columns, 1)

    def add(self, row: Sequence[Cell]) -> tuple[StatCell, ...]:
        self.count += 1
        widths = self.widths
        cells = tuple(row)
        for index in self.text_columns:
            value = cells[index]
            if value is not None:
                size = len(str(value).encode("utf-8"))
                widths[index] = max(widths[index], size)
        return cells


def _spool(rows: Iterable[tuple[Cell, ...]], spool: IO[bytes], tally: _Tally) -> None:
    batch: list[tuple[StatCell, ...]] = []
    for row in rows:
        batch.append(tally.add(row))
        if len(batch) == SPOOL_BATCH:
            pickle.dump(batch, spool, protocol=pickle.HIGHEST_PROTOCOL)
            batch = []
    if batch:
        pickle.dump(batch, spool, protocol=pickle.HIGHEST_PROTOCOL)


def _unspool(spool: IO[bytes], count: int) -> Iterator[tuple[StatCell, ...]]:
    spool.seek(0)
    remaining = count
    while remaining:
        batch: list[tuple[StatCell, ...]] = pickle.load(spool)  # noqa: S301 - our own temp file
        remaining -= len(batch)
        yield from batch


def columns_for(variables: Sequence[Variable], widths: dict[int, int]) -> list[Column]:
    return [
        Column(
            name=v.name,
            label=v.label,
            kind=v.type,
            width=widths.get(index, 1),
            value_labels=dict(v.codes),
        )
        for index, v in enumerate(variables)
    ]


def write_statistics_file(
    fmt: StatisticsFormat,
    path: Path,
    layout: WideLayout,
    rows: Iterable[tuple[Cell, ...]],
    *,
    created: datetime,
) -> int:
    """Write the wide ``rows`` to ``path`` as ``.sav`` or ``.dta``; returns the number of rows.

    The spool lives next to ``path`` (the same disk the export goes to) and is removed at once.
    """
    variables = layout.variables
    tally = _Tally(variables)
    with tempfile.TemporaryFile(dir=path.parent, prefix=".pro-export-spool-") as spool:
        _spool(rows, spool, tally)
        columns = columns_for(variables, tally.widths)
        cells = _unspool(spool, tally.count)
        with path.open("wb") as out:
            if fmt == "sav":
                return write_sav(
                    out, columns, cells, tally.count, file_label=FILE_LABEL, created=created
                )
            return write_dta(
                out, columns, cells, tally.count, dataset_label=FILE_LABEL, timestamp=created
            )
