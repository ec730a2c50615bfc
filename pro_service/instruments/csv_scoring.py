"""Score a CSV file of answers: one row per response set, columns ``q1`` ... ``q56``.

* An empty cell is a missing answer. Anything else must be exactly one of the item's codes as a
  whole number (``"3"``); ``"3.0"``, ``" 3"``, ``"NA"`` and out-of-range codes are errors.
* An instrument whose columns are all absent is not scored; some but not all present is an error.
* The other columns are copied through unchanged and in order, then one column per score
  (instruments in item order, each one's scales in file order then its summary scores), blank
  when missing, written unrounded as ``str(float)`` (which round-trips exactly).
* Any problem fails the whole file: every problem is collected, :class:`CsvScoringError` lists
  them, and no output file is left behind (the output is written to a temporary file in the
  same folder and moved into place only on success).

The rows are streamed and written in blocks. Scoring a row is one table lookup per group of
scales (see :mod:`pro_service.instruments.csv_plan`), with the same exact arithmetic as
:func:`~pro_service.instruments.scoring.score_instrument`, so both agree to the last bit.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple, TextIO

from .csv_plan import ColumnPlan, build_plan, question_column
from .model import Instrument
from .registry import InstrumentRegistry
from .scoring import describe_codes

_BOM = b"\xef\xbb\xbf"
#: Rows scored and written at a time (and per progress call); small enough to stay in cache.
CHUNK_ROWS = 250
_MISSING_WORDS = frozenset({"na", "n/a", "nan", "null", "none", ".", "-", "missing", "#n/a"})


class CsvProblem(NamedTuple):
    """One problem; ``row`` counts as a spreadsheet does (the header is row 1)."""

    row: int
    column: str
    value: str
    reason: str

    def __str__(self) -> str:
        if self.column:
            return f"row {self.row}, column {self.column}: {self.value!r} {self.reason}"
        return f"row {self.row}: {self.reason}"


class CsvScoringError(Exception):
    """The file cannot be scored; ``problems`` lists every problem found."""

    def __init__(self, path: Path | str, problems: Sequence[CsvProblem]) -> None:
        self.path = Path(path)
        self.problems = tuple(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        count = len(self.problems)
        head = f"{self.path}: {count} problem{'s' if count != 1 else ''}, nothing was scored"
        return "\n".join([head, *(str(p) for p in self.problems)])


@dataclass(frozen=True)
class CsvScoringResult:
    rows: int
    instruments: tuple[Instrument, ...]
    score_columns: tuple[str, ...]


# --------------------------------------------------------------------------------------------
# Header


def _instruments_of(source: InstrumentRegistry | Iterable[Instrument]) -> tuple[Instrument, ...]:
    if isinstance(source, InstrumentRegistry):
        return source.latest()
    return tuple(sorted(source, key=lambda i: (i.first_item, i.id)))


def _span(instrument: Instrument) -> str:
    return (
        f"q{instrument.first_item}-q{instrument.last_item} ({instrument.id} {instrument.version})"
    )


def _read_header(
    header: list[str], instruments: Sequence[Instrument], keep_answers: bool
) -> tuple[list[Instrument], list[int], list[CsvProblem]]:
    """The instruments present, the indices of the columns to copy, and header problems."""
    problems: list[CsvProblem] = []
    seen: set[str] = set()
    for name in header:
        if name in seen:
            problems.append(CsvProblem(1, name, name, "appears more than once in the header"))
        seen.add(name)

    present: list[Instrument] = []
    answer_columns: set[str] = set()
    for instrument in instruments:
        columns = [question_column(n) for n in instrument.items]
        found = [c for c in columns if c in seen]
        if not found:
            continue
        missing = [c for c in columns if c not in seen]
        if missing:
            problems.append(
                CsvProblem(
                    1,
                    "",
                    "",
                    f"{instrument.id} {instrument.version} needs all of {_span(instrument)}, "
                    f"but these columns are missing: {', '.join(missing)}",
                )
            )
            continue
        present.append(instrument)
        answer_columns.update(columns)

    if not present and not problems:
        expected = " and/or ".join(_span(i) for i in instruments)
        hint = ""
        if len(header) == 1 and (";" in header[0] or "\t" in header[0]):
            hint = (
                " (the file seems to use ';' or tabs between columns; save it as CSV with commas)"
            )
        problems.append(
            CsvProblem(1, "", "", f"no answer columns found: expected {expected}{hint}")
        )

    score_names = {code for i in present for code in i.score_codes}
    for name in header:
        if name in score_names:
            problems.append(
                CsvProblem(1, name, name, "is the name of a score column; remove or rename it")
            )

    copied = [
        index for index, name in enumerate(header) if keep_answers or name not in answer_columns
    ]
    return present, copied, problems


# --------------------------------------------------------------------------------------------
# Rows


def _cell_reason(cell: str, codes: Sequence[int]) -> str:
    allowed = f"allowed {describe_codes(codes)}"
    stripped = cell.strip()
    if stripped == "" or stripped.lower() in _MISSING_WORDS:
        return f"is not a valid answer ({allowed}; leave the cell empty for a missing answer)"
    if stripped != cell:
        return f"is not a valid answer ({allowed}; remove the spaces)"
    try:
        number = float(cell)
    except ValueError:
        return f"is not a valid answer ({allowed})"
    if number.is_integer() and "." in cell:
        return f"is not a valid answer ({allowed}; write whole numbers without decimals)"
    return f"is not a valid answer ({allowed})"


def _row_problems(
    row_number: int, row: Sequence[str], checks: Sequence[tuple[str, int, dict[str, int]]]
) -> list[CsvProblem]:
    found = []
    for column, index, lookup in checks:
        cell = row[index]
        if cell != "" and cell not in lookup:
            codes = sorted(lookup.values())
            found.append(CsvProblem(row_number, column, cell, _cell_reason(cell, codes)))
    return found


def score_csv(
    input_path: Path | str,
    output_path: Path | str,
    registry: InstrumentRegistry | Iterable[Instrument],
    progress: Callable[[int], object] | None = None,
    *,
    keep_answers: bool = False,
) -> CsvScoringResult:
    """Score ``input_path`` into ``output_path`` (see the module docstring).

    ``registry``: the latest version of each of its instruments is used (or pass instruments).
    ``progress(rows_done)`` is called every CHUNK_ROWS rows and at the end. ``keep_answers`` also
    copies the answer columns. Raises CsvScoringError listing every problem (no output file is
    left), OSError when a file cannot be read or written, ValueError when input and output are
    the same file.
    """
    source = Path(input_path)
    target = Path(output_path)
    if target.exists() and source.exists() and target.resolve() == source.resolve():
        raise ValueError("the output file must not be the input file")
    instruments = _instruments_of(registry)

    with source.open("rb") as probe:
        has_bom = probe.read(3) == _BOM
    with source.open(encoding="utf-8-sig", newline="") as infile:
        try:
            header = next(csv.reader(infile), None)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise CsvScoringError(source, [_read_problem(source, 1, exc)]) from None
        if header is None:
            raise CsvScoringError(source, [CsvProblem(1, "", "", "the file is empty")])
        present, copied, problems = _read_header(header, instruments, keep_answers)
        if problems:
            raise CsvScoringError(source, problems)
        plan = build_plan(present, {name: index for index, name in enumerate(header)})
        score_columns = tuple(code for i in present for code in i.score_codes)
        out_header = [header[i] for i in copied] + list(score_columns)

        handle, temp = _create_temporary(target)
        ok = False
        try:
            with os.fdopen(
                handle, "w", encoding="utf-8-sig" if has_bom else "utf-8", newline=""
            ) as outfile:
                csv.writer(outfile).writerow(out_header)
                rows = _score_rows(
                    source,
                    infile,
                    outfile.write,
                    plan=plan,
                    copied=copied,
                    width=len(header),
                    problems=problems,
                    progress=progress,
                )
            if problems:
                raise CsvScoringError(source, problems)
            os.replace(temp, target)
            ok = True
        finally:
            if not ok:
                temp.unlink(missing_ok=True)
    return CsvScoringResult(rows=rows, instruments=tuple(present), score_columns=score_columns)


def _create_temporary(target: Path) -> tuple[int, Path]:
    """A new, hidden file next to ``target``, created like any other file (so the umask sets
    its permissions, unlike ``tempfile.mkstemp``'s 0600)."""
    for _ in range(100):
        temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
        try:
            return os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), temp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file next to {target}")


def _read_problem(source: Path, row_number: int, exc: Exception) -> CsvProblem:
    if isinstance(exc, UnicodeDecodeError):
        row_number = _first_undecodable_line(source) or row_number
        return CsvProblem(row_number, "", "", "the file is not UTF-8 text (save it as CSV UTF-8)")
    return CsvProblem(row_number, "", "", f"unreadable CSV: {exc}")


def _first_undecodable_line(source: Path) -> int | None:
    with source.open("rb") as raw:
        for number, line in enumerate(raw, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return None


def _score_rows(
    source: Path,
    infile: TextIO,
    write: Callable[[str], object],
    *,
    plan: ColumnPlan,
    copied: Sequence[int],
    width: int,
    problems: list[CsvProblem],
    progress: Callable[[int], object] | None,
) -> int:
    """Validate and score every row; write while no problem has been found. Returns the rows."""
    reader = csv.reader(infile)
    chunks = iter(lambda: list(islice(reader, CHUNK_ROWS)), [])
    row_number = 1  # the header
    scored = 0
    while True:
        try:
            chunk = next(chunks, None)
        except (UnicodeDecodeError, csv.Error) as exc:
            problems.append(_read_problem(source, row_number + 1, exc))
            break
        if chunk is None:
            break
        first = row_number + 1
        row_number += len(chunk)
        numbers: Sequence[int] = range(first, first + len(chunk))
        if len(chunk[0]) != width or len(set(map(len, chunk))) != 1:
            chunk, numbers = _regular_rows(chunk, first, width, problems)
            if not chunk:
                continue
        columns = list(zip(*chunk, strict=True))
        try:
            out = plan.score(columns)
        except KeyError:
            for number, row in zip(numbers, chunk, strict=True):
                problems.extend(_row_problems(number, row, plan.checks))
            continue
        scored += len(chunk)
        if problems:
            continue
        if copied:
            out.insert(0, _copied_column(chunk, columns, copied))
        write("\r\n".join(map(",".join, zip(*out, strict=True))))
        write("\r\n")
        if progress is not None:
            progress(row_number - 1)
    if progress is not None:
        progress(row_number - 1)
    return scored


def _copied_column(
    chunk: Sequence[Sequence[str]], columns: Sequence[Sequence[str]], copied: Sequence[int]
) -> Sequence[str]:
    """The copied-through cells of each row, as CSV text (quoted only where needed)."""
    if len(copied) == 1:
        joined: Sequence[str] = columns[copied[0]]
    else:
        joined = list(map(",".join, zip(*[columns[i] for i in copied], strict=True)))
    text = "".join(joined)
    if (
        text.count(",") == (len(copied) - 1) * len(joined)
        and '"' not in text
        and "\n" not in text
        and "\r" not in text
    ):
        return joined
    get = itemgetter(*copied) if len(copied) > 1 else None
    return [_csv_line(get(row) if get else (row[copied[0]],)) for row in chunk]


def _regular_rows(
    chunk: list[list[str]], first: int, width: int, problems: list[CsvProblem]
) -> tuple[list[list[str]], list[int]]:
    """Drop blank lines, and report and drop rows of the wrong width."""
    rows: list[list[str]] = []
    numbers: list[int] = []
    for number, row in enumerate(chunk, start=first):
        if not row or row == [""]:
            continue
        if len(row) != width:
            problems.append(
                CsvProblem(number, "", "", f"has {len(row)} cells, the header has {width}")
            )
            continue
        rows.append(row)
        numbers.append(number)
    return rows, numbers


def _csv_line(cells: Sequence[str]) -> str:
    """``cells`` as one CSV line (quoted as csv.writer does), without the line end."""
    buffer = io.StringIO()
    csv.writer(buffer).writerow(cells)  # the "\r\n" terminator makes it quote line breaks
    return buffer.getvalue()[:-2]
