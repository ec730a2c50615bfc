"""The column-wise machinery of :func:`~pro_service.instruments.csv_scoring.score_csv`.

A scale's score depends only on its few raw cells, and each cell has only a handful of valid
values (the codes as text, or empty), so a scale has at most a few thousand cell combinations.
Consecutive scales are put into *groups* whose combined combinations stay under
``TABLE_LIMIT``, and each group has a table that maps the group's raw cells (a tuple of
strings, taken from a row by one ``itemgetter``) to the group's output cells joined with ","
(plus, when the group holds components of a summary score, one integer part per summary).
Tables are built up front; a bigger single scale gets a table that fills itself as
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import product, repeat
from operator import itemgetter
from typing import Any

from .model import Instrument
from .scoring import CompiledScale, CompiledSummary, compile_instrument

#: Most cell combinations in a group of several scales. Measured with bench/bench_score.py:
#: fewer, bigger groups save little per row and cost more to build and in cache misses.
TABLE_LIMIT = 1024
#: Largest table filled up front (about 1 us per entry); bigger ones fill as keys appear.
PREFILL_LIMIT = 20_000

_FIRST = itemgetter(0)
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


def tuple_getter(indices: Sequence[int]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """Like ``itemgetter(*indices)`` but always returning a tuple."""
    if not indices:
        return lambda row: ()
    if len(indices) == 1:
        index = indices[0]
        return lambda row: (row[index],)
    return itemgetter(*indices)


@dataclass(frozen=True)
class _Role:
    """A scale is component ``index`` of ``summary``; ``missing`` is its sentinel part."""

    summary: CompiledSummary
    index: int
    missing: int


def _sentinel(summary: CompiledSummary) -> int:
    # Every real part is between 0 and the denominator, so a total holding one sentinel is < 0.
    return -(summary.denominator * len(summary.components) + 1)


@dataclass(frozen=True)
class _ScalePart:
    """One scale inside a group: how to read its cells and what it adds to each summary."""

    scale: CompiledScale
    lookups: tuple[dict[str, int], ...]  # per item: valid cell text -> code
    roles: tuple[_Role | None, ...]  # per summary of the instrument

    @property
    def combinations(self) -> int:
        return math.prod(len(lookup) + 1 for lookup in self.lookups)

    def evaluate(self, cells: Sequence[str]) -> tuple[str, tuple[int, ...]]:
        """(output cell, part per summary) for the scale's raw cells; KeyError if one is bad."""
        answered = [lookup[cell] for lookup, cell in zip(self.lookups, cells, strict=True) if cell]
        ratio = self.scale.ratio(answered)
        text = "" if ratio is None else repr(100 * ratio[0] / ratio[1])
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
    """Consecutive scales read with one key; the table value is the joined output cells, or
    ``(joined cells, part for summary 0, ...)`` when ``with_parts``."""

    parts: tuple[_ScalePart, ...]
    width: int  # cells in the key (a bare string when 1)
    with_parts: bool

    def _value(self, texts: Sequence[str], total: tuple[int, ...]) -> Any:
        joined = ",".join(texts)
        return (joined, *total) if self.with_parts else joined

    def compute(self, key: Any) -> Any:
        cells = (key,) if self.width == 1 else key
        texts: list[str] = []
        total = (0,) * len(self.parts[0].roles)
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
        zero = (0,) * len(self.parts[0].roles)
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
    groups: tuple[int, ...]  # the groups holding its components
    part: Callable[[Any], int]
    text: _Table  # total -> output cell


def _summary_text(summary: CompiledSummary) -> _Table:
    """Total part (-1 when a component is missing) -> output cell."""
    table = _Table(lambda total: "" if total < 0 else repr(summary.value(total)))
    highest = summary.denominator * len(summary.components)
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
    with_parts: tuple[bool, ...]
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
        out: list[Sequence[str]] = [
            list(map(_FIRST, column)) if with_parts else column
            for column, with_parts in zip(values, self.with_parts, strict=True)
        ]
        for summary in self.summaries:
            parts = [list(map(summary.part, values[g])) for g in summary.groups]
            totals = parts[0] if len(parts) == 1 else map(sum, zip(*parts, strict=True))
            clamped = map(max, totals, _MINUS_ONE)  # any missing component: -1
            out.insert(summary.position, list(map(summary.text.__getitem__, clamped)))
        return out


def build_plan(instruments: Sequence[Instrument], positions: dict[str, int]) -> ColumnPlan:
    """The plan for ``instruments`` (in output order) and a header's column ``positions``."""
    keys: list[tuple[int, ...]] = []
    tables: list[_Table] = []
    with_parts: list[bool] = []
    summaries: list[_SummaryColumn] = []
    unscored: list[tuple[int, frozenset[str]]] = []
    for instrument in instruments:
        compiled = compile_instrument(instrument)
        parts = []
        for position, scale in enumerate(compiled.scales):
            roles = tuple(
                _Role(s, s.positions.index(position), _sentinel(s))
                if position in s.positions
                else None
                for s in compiled.summaries
            )
            lookups = tuple(_item_lookup(instrument, n) for n in scale.items)
            parts.append(_ScalePart(scale=scale, lookups=lookups, roles=roles))
        groups = _groups(parts)
        first_group = len(tables)
        for group_parts in groups:
            items = [n for part in group_parts for n in part.scale.items]
            has_parts = any(role is not None for p in group_parts for role in p.roles)
            keys.append(tuple(positions[question_column(n)] for n in items))
            tables.append(_Group(group_parts, len(items), has_parts).table())
            with_parts.append(has_parts)
        for k, summary in enumerate(compiled.summaries):
            holders = tuple(
                first_group + g
                for g, group_parts in enumerate(groups)
                if any(p.roles[k] is not None for p in group_parts)
            )
            summaries.append(
                _SummaryColumn(
                    position=len(tables) + len(summaries),
                    groups=holders,
                    part=itemgetter(1 + k),
                    text=_summary_text(summary),
                )
            )
        covered = {n for scale in compiled.scales for n in scale.items}
        for number in instrument.items:
            if number not in covered:
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
        with_parts=tuple(with_parts),
        summaries=tuple(summaries),
        unscored=tuple(unscored),
        checks=checks,
    )
