"""Scoring a large, regular block of CSV lines at once with numpy, for
:func:`~pro_service.file_scoring.csv_scoring.score_csv`.

A block qualifies when it is plain ASCII text without quotes, every line has as many cells as
the header, no line is blank and every answer cell is empty or one valid code. Then:

* the separators are found in one pass over the block's bytes, which gives where each cell
  ends (and so where the next one starts);
* an answer cell is read by its first byte: its code, or the separator or line end that follows
  an empty cell (not answered);
* a scale's score depends only on how many of its items are answered and the sum of their
  codes (:meth:`~pro_service.instruments.scoring.CompiledScale.ratio_of`), so each scale has a
  small table from that pair to its output cell and to its integer part of each summary score;
* consecutive scales are written as one piece of text: a table holds every combination of
  their cells, joined, so that an output line joins a dozen pieces rather than one per score;
* summary scores add the integer parts, as the row path does.

The cells are made by the same functions as the row path's (:func:`~.csv_plan.scale_cell`,
:func:`~.csv_plan.summary_cell`), so the output is the same text, byte for byte. A block that
does not qualify (a bad cell, a blank or short line, a quote, a non-ASCII cell, a line longer
than the csv module takes a cell) is left to the row path, which finds and reports its problems
exactly as before. numpy is imported only when a file is big enough for this to pay (see
``FAST_MIN_BYTES`` in ``csv_scoring``).
"""

from __future__ import annotations

import csv
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any

import numpy as np

from ..instruments.csv_dialect import FORMULA_STARTS, formula_safe
from ..instruments.model import Instrument
from ..instruments.scoring import CompiledScale, CompiledSummary, compile_instrument
from .csv_plan import highest_total, missing_part, question_column, scale_cell, summary_cell

_NEWLINE = ord("\n")
_RETURN = ord("\r")
#: Whether a byte starts a cell that formula_safe may quote (a spreadsheet's formula).
_FORMULA_STARTS = np.zeros(256, dtype=bool)
_FORMULA_STARTS[[ord(c) for c in FORMULA_STARTS]] = True
#: A scale's key is ``answered items * STRIDE + sum of their codes``; every sum is below it.
STRIDE = 64


#: Most totals of a summary score's parts (QLQ-C30's: 2,340), whose cells are made up front.
SUMMARY_LIMIT = 1 << 16
#: Most cell combinations in a group of consecutive scales written as one piece of text.
#: Fewer, longer pieces make each output line cheaper to join; bigger groups cost more to build.
GROUP_LIMIT = 4096


@dataclass(frozen=True)
class _Scale:
    items: tuple[int, ...]
    #: key (count * STRIDE + total) -> the scale's state: its distinct output cells, numbered
    states: Any
    cells: tuple[str, ...]  # state -> output cell
    parts: tuple[Any, ...]  # per summary of the instrument: int64 array, key -> part


@dataclass(frozen=True)
class _Group:
    """Consecutive scales whose cells are written as one text: ``cells[index]``, where
    ``index`` is the sum of each scale's state times its ``weight``."""

    scales: tuple[int, ...]  # indices into the instrument's scales
    weights: tuple[int, ...]
    cells: Any  # object array: index -> the group's cells joined with ","


@dataclass(frozen=True)
class _Summary:
    summary: CompiledSummary
    cells: Any  # object array: total + 1 -> output cell (0: a component is missing)


@dataclass(frozen=True)
class _InstrumentArrays:
    scales: tuple[_Scale, ...]
    groups: tuple[_Group, ...]  # the scales' output columns, in order
    summaries: tuple[_Summary, ...]  # their columns follow the scales'


_arrays_cache: weakref.WeakKeyDictionary[Instrument, _InstrumentArrays] = (
    weakref.WeakKeyDictionary()
)


def _single_digit_codes(instrument: Instrument) -> bool:
    return all(0 <= code <= 9 for item in instrument.items.values() for code in item.codes)


def _instrument_arrays(instrument: Instrument) -> _InstrumentArrays:
    known = _arrays_cache.get(instrument)
    if known is None:
        known = _arrays_cache[instrument] = _build_arrays(instrument)
    return known


def _build_scale(
    position: int, scale: CompiledScale, summaries: Sequence[CompiledSummary]
) -> _Scale:
    size = (scale.n_items + 1) * STRIDE
    states = np.zeros(size, dtype=np.intp)
    state_of: dict[str, int] = {}
    parts = [np.zeros(size, dtype=np.int64) for _ in summaries]
    high = scale.low + scale.span
    for count in range(scale.n_items + 1):
        for total in range(count * scale.low, count * high + 1):  # the sums that can occur
            key = count * STRIDE + total
            ratio = scale.ratio_of(count, total)
            states[key] = state_of.setdefault(scale_cell(ratio), len(state_of))
            for summary, part in zip(summaries, parts, strict=True):
                if position not in summary.positions:
                    continue
                if ratio is None:
                    part[key] = missing_part(summary)
                else:
                    part[key] = summary.part(summary.positions.index(position), ratio)
    return _Scale(scale.items, states, tuple(state_of), tuple(parts))


def _build_group(scales: Sequence[_Scale], indices: tuple[int, ...]) -> _Group:
    """Every combination of the scales' cells, joined, in the order their index gives."""
    cells = np.array(scales[indices[0]].cells, dtype=object)
    for index in indices[1:]:
        following = np.array(["," + cell for cell in scales[index].cells], dtype=object)
        cells = (cells[:, None] + following[None, :]).ravel()
    weights = []
    weight = 1
    for index in reversed(indices):
        weights.append(weight)
        weight *= len(scales[index].cells)
    return _Group(indices, tuple(reversed(weights)), cells)


def _build_arrays(instrument: Instrument) -> _InstrumentArrays:
    compiled = compile_instrument(instrument)
    scales = [
        _build_scale(position, scale, compiled.summaries)
        for position, scale in enumerate(compiled.scales)
    ]
    runs: list[list[int]] = []
    size = GROUP_LIMIT + 1
    for index, scale in enumerate(scales):
        if size * len(scale.cells) > GROUP_LIMIT:
            runs.append([])
            size = 1
        runs[-1].append(index)
        size *= len(scale.cells)
    summaries = tuple(
        _Summary(
            summary,
            np.array(
                [summary_cell(summary, total) for total in range(-1, highest_total(summary) + 1)],
                dtype=object,
            ),
        )
        for summary in compiled.summaries
    )
    return _InstrumentArrays(
        scales=tuple(scales),
        groups=tuple(_build_group(scales, tuple(run)) for run in runs),
        summaries=summaries,
    )


class BlockScorer:
    """Scores blocks of lines of one file (its header gave the column ``positions``)."""

    def __init__(
        self,
        instruments: Sequence[Instrument],
        positions: dict[str, int],
        copied: Sequence[int],
        width: int,
        delimiter: str,
    ) -> None:
        self.instruments = tuple(_instrument_arrays(i) for i in instruments)
        self.width = width
        self.copied = tuple(copied)
        self.separator = ord(delimiter)
        numbers = [n for i in instruments for n in i.items]
        columns = [positions[question_column(n)] for n in numbers]
        #: the answer columns, as a slice when they are consecutive (the usual file)
        self.answer_columns: Any = np.array(columns)
        #: the column before each (-1 for the first column: the line start)
        self.before_answers: Any = self.answer_columns - 1
        if columns == list(range(columns[0], columns[0] + len(columns))) and columns[0] > 0:
            self.answer_columns = slice(columns[0], columns[0] + len(columns))
            self.before_answers = slice(columns[0] - 1, columns[0] - 1 + len(columns))
        #: row of an item in the block's (answer column, line) arrays
        self.row_of = {n: row for row, n in enumerate(numbers)}
        # An answer cell is read by its first byte: a code, or the separator or line end that
        # follows an empty cell. Its value is ``answered * STRIDE + code``, -1 if invalid, so
        # that a scale's key (the sum of its cells' values) is ``count * STRIDE + total``. One
        # table of 256 values per answer column, one after the other.
        self.values: Any = np.full((len(numbers), 256), -1, dtype=np.int16)
        self.values[:, [self.separator, _NEWLINE, _RETURN]] = 0
        for row, number in enumerate(numbers):
            item = next(i.items[number] for i in instruments if number in i.items)
            for code in item.codes:
                self.values[row, ord(str(code))] = STRIDE + code
        self.values = self.values.ravel()
        self.table_offsets = np.arange(len(numbers)) * 256

    @classmethod
    def for_file(
        cls,
        instruments: Sequence[Instrument],
        positions: dict[str, int],
        copied: Sequence[int],
        width: int,
        delimiter: str,
    ) -> BlockScorer | None:
        """A scorer, or None when the instruments do not suit (a code that is not one digit, a
        scale so long that its sums reach STRIDE, a summary with more than SUMMARY_LIMIT
        totals)."""
        if not instruments or not delimiter.isascii() or delimiter in "\r\n":
            return None
        for instrument in instruments:
            if not _single_digit_codes(instrument):
                return None
            if any(len(scale.items) * 9 >= STRIDE for scale in instrument.scales):
                return None
            summaries = compile_instrument(instrument).summaries
            if any(highest_total(summary) > SUMMARY_LIMIT for summary in summaries):
                return None
        return cls(instruments, positions, copied, width, delimiter)

    def score(self, text: str) -> tuple[int, dict[int, list[str]], list[Sequence[str]]] | None:
        """(the number of lines, the copied columns' cells by column index, made
        formula-safe, and the score columns) for ``text``, whole lines; or None when the block
        does not qualify (see the module docstring)."""
        if not text.isascii() or '"' in text:
            return None
        rows = text.count("\n")
        if not text.endswith("\n"):  # the file's last line
            text += "\n"
            rows += 1
        width = self.width
        returns = text.count("\r")
        if returns not in (0, rows):
            return None
        data = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
        ends: Any = np.flatnonzero((data == self.separator) | (data == _NEWLINE))
        if len(ends) != rows * width:
            return None
        ends = ends.reshape(rows, width)
        if not (data[ends[:, -1]] == _NEWLINE).all():  # some line has another number of cells
            return None
        line_starts = np.empty(rows, dtype=ends.dtype)
        line_starts[0] = 0
        line_starts[1:] = ends[:-1, -1] + 1
        if returns:  # every line must end with "\r\n"; the last cell ends before the "\r"
            ends[:, -1] -= 1
            if not (data[ends[:, -1]] == _RETURN).all():
                return None
        lengths = ends[:, -1] - line_starts
        if (lengths == width - 1).any():  # a blank line
            return None
        if lengths.max() > csv.field_size_limit():  # the csv module may refuse a cell
            return None
        answer_starts = self._starts(ends, line_starts, self.before_answers)
        if (ends[:, self.answer_columns] - answer_starts).max() > 1:
            return None
        first_bytes = data[answer_starts]
        values = self.values.take(first_bytes + self.table_offsets)
        if values.min() < 0:  # an invalid answer
            return None
        values = np.ascontiguousarray(values.T)  # one row per answer column

        out: list[Sequence[str]] = []
        for arrays in self.instruments:
            keys = [
                reduce(np.add, (values[self.row_of[n]] for n in scale.items))
                for scale in arrays.scales
            ]
            for group in arrays.groups:
                index = reduce(
                    np.add,
                    (
                        arrays.scales[s].states.take(keys[s]) * weight
                        for s, weight in zip(group.scales, group.weights, strict=True)
                    ),
                )
                out.append(group.cells.take(index).tolist())
            for number, summary in enumerate(arrays.summaries):
                totals = reduce(
                    np.add,
                    (
                        arrays.scales[s].parts[number].take(keys[s])
                        for s in summary.summary.positions
                    ),
                )
                out.append(self._summary_cells(summary, totals))
        copied = {}
        for column in self.copied:
            starts = self._starts(ends, line_starts, column - 1)
            cells = list(
                map(text.__getitem__, map(slice, starts.tolist(), ends[:, column].tolist()))
            )
            if _FORMULA_STARTS[data[starts]].any():
                cells = list(map(formula_safe, cells))
            copied[column] = cells
        return rows, copied, out

    @staticmethod
    def _starts(ends: Any, line_starts: Any, before: Any) -> Any:
        """Where the cells start that follow the cells ``before`` (-1: the line start)."""
        if isinstance(before, slice):
            return ends[:, before] + 1
        if isinstance(before, int):
            return line_starts if before < 0 else ends[:, before] + 1
        starts = ends[:, before] + 1
        starts[:, before < 0] = line_starts[:, None]
        return starts

    @staticmethod
    def _summary_cells(summary: _Summary, totals: Any) -> list[str]:
        cells: list[str] = summary.cells.take(np.maximum(totals, -1) + 1).tolist()
        return cells
