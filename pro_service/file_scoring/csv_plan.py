"""The column-wise machinery of :func:`~pro_service.file_scoring.csv_scoring.score_csv`.

A scale's score depends only on its few raw cells, and each cell has only a handful of valid
values (the codes as text, or empty), so a scale has at most a few thousand cell combinations.
Consecutive scales are put into *groups* whose combined combinations stay under
``TABLE_LIMIT``, and each group has a table that maps the group's raw cells (a tuple of
strings, one per item) to the group's output cells joined with ","; for each summary score, a
second dict maps that text to the group's integer part of the summary. Tables are built up
front (and kept per instrument); a bigger single scale gets a table that fills itself as
combinations appear. A key that is not in a table holds an invalid cell and raises KeyError.

Rows are scored a chunk at a time, transposed into columns: for each group, one
``map(table.__getitem__, zip(column_a, column_b, ...))``, so the per-row work is C-level.

Summary scores are sums of integer parts over one common denominator (see
:class:`~pro_service.instruments.scoring.CompiledSummary`); a missing component contributes a
negative sentinel so large that any total containing one is negative, which the summary's text
table turns into an empty cell. Every number comes from
:class:`~pro_service.instruments.scoring.CompiledScale` and ``CompiledSummary``, the same exact
arithmetic as :func:`~pro_service.instruments.scoring.score_instrument`, so both agree to the
last bit.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import product, repeat
from typing import Any

from ..instruments.model import Instrument
from ..instruments.scoring import CompiledScale, CompiledSummary, Ratio, compile_instrument

#: Most cell combinations in a group of several scales. Measured with bench/bench_score.py:
#: fewer, bigger groups save little per row and cost more to build and in cache misses.
TABLE_LIMIT = 1024
#: Largest table filled up front (about 1 us per entry); bigger ones fill as keys appear.
PREFILL_LIMIT = 20_000

_MINUS_ONE = repeat(-1)


class _Table(dict[Any, Any]):
    """A dict that computes (and keeps) what it lacks; invalid keys raise KeyError."""

    __slots__ = ("compute",)

    def __init__(self, compute: Callable[[Any], Any]) -> None:
        super().__init__()
        self.compute = compute

    def __missing__(self, key: Any) -> Any:
        value = self.compute(key)
        self[key] = value
        return value


def question_column(number: int) -> str:
    return f"q{number}"


def scale_cell(ratio: Ratio | None) -> str:
    """A scale's output cell: the score unrounded (``repr`` round-trips), empty when missing."""
    return "" if ratio is None else repr(100 * ratio[0] / ratio[1])


def summary_cell(summary: CompiledSummary, total: int) -> str:
    """A summary's output cell from its total part; empty when negative (a component is
    missing)."""
    return "" if total < 0 else repr(summary.value(total))


@dataclass(frozen=True)
class _Role:
    """A scale is component ``index`` of ``summary``; ``missing`` is its sentinel part."""

    summary: CompiledSummary
    index: int
    missing: int


def highest_total(summary: CompiledSummary) -> int:
    """The largest total of a summary score's parts."""
    return summary.denominator * len(summary.components)


def missing_part(summary: CompiledSummary) -> int:
    """The part a missing component adds to a summary's total."""
    # Every real part is between 0 and the denominator, so a total holding one sentinel is < 0.
    return -(highest_total(summary) + 1)


@dataclass(frozen=True)
class _ScalePart:
    """One scale inside a group: how to read its cells and what it adds to each summary."""

    scale: CompiledScale
    lookups: tuple[dict[str, int], ...]  # per item: valid cell text -> code
    roles: tuple[_Role | None, ...]  # per summary of the instrument
    results: dict[tuple[int, int], tuple[str, tuple[int, ...]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def combinations(self) -> int:
        return math.prod(len(lookup) + 1 for lookup in self.lookups)

    def evaluate(self, cells: Sequence[str]) -> tuple[str, tuple[int, ...]]:
        """(output cell, part per summary) for the scale's raw cells; KeyError if one is bad."""
        answered = [lookup[cell] for lookup, cell in zip(self.lookups, cells, strict=True) if cell]
        # The result depends only on how many items are answered and their sum.
        key = (len(answered), sum(answered))
        known = self.results.get(key)
        if known is None:
            known = self.results[key] = self._result(answered)
        return known

    def _result(self, answered: Sequence[int]) -> tuple[str, tuple[int, ...]]:
        ratio = self.scale.ratio(answered)
        text = scale_cell(ratio)
        parts = tuple(
            0
            if role is None
            else role.missing
            if ratio is None
            else role.summary.part(role.index, ratio)
            for role in self.roles
        )
        return text, parts

    def entries(self) -> list[tuple[tuple[str, ...], str, tuple[int, ...]]]:
        """Every valid combination of cells with its result."""
        states = [("", *lookup) for lookup in self.lookups]
        return [(cells, *self.evaluate(cells)) for cells in product(*states)]


def _add(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(x + y for x, y in zip(a, b, strict=True))


@dataclass(frozen=True)
class _Group:
    """Consecutive scales read with one key. The table maps the key to the group's output cells
    joined with ","; ``part_tables[k]`` maps that text on to the group's integer part of
    summary ``k`` (the text determines the scores, hence the part). Equal texts are one object,
    so the second lookup compares by identity."""

    parts: tuple[_ScalePart, ...]
    width: int  # cells in the key (a bare string when 1)
    part_tables: tuple[dict[str, int], ...]  # per summary of the instrument
    texts: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def _value(self, texts: Sequence[str], total: tuple[int, ...]) -> str:
        joined = ",".join(texts)
        joined = self.texts.setdefault(joined, joined)
        for part_table, part in zip(self.part_tables, total, strict=True):
            part_table[joined] = part
        return joined

    def compute(self, key: Any) -> str:
        cells = (key,) if self.width == 1 else key
        texts: list[str] = []
        total = (0,) * len(self.part_tables)
        offset = 0
        for part in self.parts:
            size = len(part.lookups)
            text, parts = part.evaluate(cells[offset : offset + size])
            offset += size
            texts.append(text)
            total = _add(total, parts)
        return self._value(texts, total)

    def table(self) -> _Table:
        table = _Table(self.compute)
        if math.prod(p.combinations for p in self.parts) > PREFILL_LIMIT:
            return table
        zero = (0,) * len(self.part_tables)
        rows: list[tuple[tuple[str, ...], list[str], tuple[int, ...]]] = [((), [], zero)]
        for part in self.parts:
            entries = part.entries()
            rows = [
                (cells + more, [*texts, text], _add(total, parts))
                for cells, texts, total in rows
                for more, text, parts in entries
            ]
        for cells, texts, total in rows:
            table[cells[0] if self.width == 1 else cells] = self._value(texts, total)
        return table


def _groups(parts: Sequence[_ScalePart]) -> list[tuple[_ScalePart, ...]]:
    """Consecutive runs of scales whose combined combinations stay within TABLE_LIMIT.

    Greedy, which gives the fewest groups for a limit on each run's product.
    """
    groups: list[tuple[_ScalePart, ...]] = []
    current: list[_ScalePart] = []
    size = 1
    for part in parts:
        if current and size * part.combinations > TABLE_LIMIT:
            groups.append(tuple(current))
            current, size = [], 1
        current.append(part)
        size *= part.combinations
    if current:
        groups.append(tuple(current))
    return groups


@dataclass(frozen=True)
class _SummaryColumn:
    position: int  # index among the output columns
    parts: tuple[tuple[int, dict[str, int]], ...]  # (group, its text -> part) per holder group
    text: _Table  # total -> output cell


def _summary_text(summary: CompiledSummary) -> _Table:
    """Total part (-1 when a component is missing) -> output cell."""
    table = _Table(lambda total: summary_cell(summary, total))
    highest = highest_total(summary)
    if highest < PREFILL_LIMIT:
        table.update((total, table.compute(total)) for total in range(-1, highest + 1))
    return table


def _item_lookup(instrument: Instrument, number: int) -> dict[str, int]:
    return {str(code): code for code in instrument.items[number].codes}


@dataclass(frozen=True)
class ColumnPlan:
    """Scores chunks of rows of a file whose header gave the column ``positions``."""

    keys: tuple[tuple[int, ...], ...]  # per group: the column indices of its key
    tables: tuple[_Table, ...]
    summaries: tuple[_SummaryColumn, ...]
    unscored: tuple[tuple[int, frozenset[str]], ...]  # items in no scale: (column, valid cells)
    #: (column, index, valid cells) for every answer column, to explain a failed chunk
    checks: tuple[tuple[str, int, dict[str, int]], ...]

    def score(self, columns: Sequence[Sequence[str]]) -> list[Sequence[str]]:
        """The output columns for the input ``columns`` (a transposed chunk of rows).

        Raises KeyError when a cell is not a valid answer.
        """
        for index, valid in self.unscored:
            if not valid.issuperset(columns[index]):
                raise KeyError(index)
        values = [
            list(
                map(
                    table.__getitem__,
                    columns[key[0]]
                    if len(key) == 1
                    else zip(*[columns[i] for i in key], strict=True),
                )
            )
            for key, table in zip(self.keys, self.tables, strict=True)
        ]
        out: list[Sequence[str]] = list(values)
        for summary in self.summaries:
            parts = [map(table.__getitem__, values[g]) for g, table in summary.parts]
            totals = parts[0] if len(parts) == 1 else map(sum, zip(*parts, strict=True))
            clamped = map(max, totals, _MINUS_ONE)  # any missing component: -1
            out.insert(summary.position, list(map(summary.text.__getitem__, clamped)))
        return out


@dataclass(frozen=True)
class _InstrumentTables:
    """An instrument's groups and summary tables; they do not depend on the file's header."""

    groups: tuple[tuple[tuple[int, ...], _Table], ...]  # (items, table)
    #: per summary: ((group, its text -> part) for each group holding components, text table)
    summaries: tuple[tuple[tuple[tuple[int, dict[str, int]], ...], _Table], ...]
    unscored: tuple[int, ...]  # items in no scale


_tables_cache: weakref.WeakKeyDictionary[Instrument, dict[tuple[int, int], _InstrumentTables]] = (
    weakref.WeakKeyDictionary()
)


def _instrument_tables(instrument: Instrument) -> _InstrumentTables:
    """Built once per instrument (and table limits) and kept while the instrument lives, so a
    long-running process pays the ~20 ms of building only for its first file."""
    per_limits = _tables_cache.setdefault(instrument, {})
    limits = (TABLE_LIMIT, PREFILL_LIMIT)
    if limits not in per_limits:
        per_limits[limits] = _build_tables(instrument)
    return per_limits[limits]


def _build_tables(instrument: Instrument) -> _InstrumentTables:
    compiled = compile_instrument(instrument)
    parts = []
    for position, scale in enumerate(compiled.scales):
        roles = tuple(
            _Role(s, s.positions.index(position), missing_part(s))
            if position in s.positions
            else None
            for s in compiled.summaries
        )
        lookups = tuple(_item_lookup(instrument, n) for n in scale.items)
        parts.append(_ScalePart(scale=scale, lookups=lookups, roles=roles))
    groups = []
    for group_parts in _groups(parts):
        part_tables: tuple[dict[str, int], ...] = tuple({} for _ in compiled.summaries)
        width = sum(len(p.lookups) for p in group_parts)
        groups.append(_Group(group_parts, width, part_tables))
    built = tuple(
        (tuple(n for part in group.parts for n in part.scale.items), group.table())
        for group in groups
    )
    summaries = tuple(
        (
            tuple(
                (g, group.part_tables[k])
                for g, group in enumerate(groups)
                if any(p.roles[k] is not None for p in group.parts)
            ),
            _summary_text(summary),
        )
        for k, summary in enumerate(compiled.summaries)
    )
    covered = {n for scale in compiled.scales for n in scale.items}
    return _InstrumentTables(
        groups=built,
        summaries=summaries,
        unscored=tuple(n for n in instrument.items if n not in covered),
    )


def build_plan(instruments: Sequence[Instrument], positions: dict[str, int]) -> ColumnPlan:
    """The plan for ``instruments`` (in output order) and a header's column ``positions``."""
    keys: list[tuple[int, ...]] = []
    tables: list[_Table] = []
    summaries: list[_SummaryColumn] = []
    unscored: list[tuple[int, frozenset[str]]] = []
    for instrument in instruments:
        built = _instrument_tables(instrument)
        first_group = len(tables)
        for items, table in built.groups:
            keys.append(tuple(positions[question_column(n)] for n in items))
            tables.append(table)
        for holders, text in built.summaries:
            summaries.append(
                _SummaryColumn(
                    position=len(tables) + len(summaries),
                    parts=tuple((first_group + g, part_table) for g, part_table in holders),
                    text=text,
                )
            )
        for number in built.unscored:
            valid = frozenset(["", *_item_lookup(instrument, number)])
            unscored.append((positions[question_column(number)], valid))
    checks = tuple(
        (question_column(n), positions[question_column(n)], _item_lookup(instrument, n))
        for instrument in instruments
        for n in instrument.items
    )
    return ColumnPlan(
        keys=tuple(keys),
        tables=tuple(tables),
        summaries=tuple(summaries),
        unscored=tuple(unscored),
        checks=checks,
    )
