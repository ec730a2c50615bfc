"""Score a CSV file of answers: one row per response set, columns ``q1`` ... ``q56``.

* An empty cell is a missing answer. Anything else must be exactly one of the item's codes as a
  whole number (``"3"``); ``"3.0"``, ``" 3"``, ``"NA"`` and out-of-range codes are errors.
* An instrument whose columns are all absent is not scored; some but not all present is an error.
* Every column must be an answer column unless ``allow_extra_columns``; then the other columns
  are copied through in order, then one column per score (instruments in item order, each one's
  scales in file order then its summary scores), blank when missing, written unrounded as
  ``str(float)`` (which round-trips exactly). A column whose name is close to an answer column's
  (``Q31``, ``q31 ``, ``q_31``) is always an error naming the expected name: copied through, it
  would leave its instrument silently unscored.
* Commas, semicolons (Swedish and Finnish spreadsheets) or tabs between columns, and a UTF-8
  byte-order mark, are recognised as ``import-patients`` does
  (:mod:`pro_service.instruments.csv_dialect`); the output is comma-separated, with a byte-order
  mark when the input had one.
* A row with every cell empty is skipped and its number reported (``blank_rows``).
* Copied text cells that a spreadsheet would run as a formula (starting with ``=``, ``+``,
  ``-``, ``@``, a tab or a carriage return, and not a number) get a leading ``'``
  (see :func:`formula_safe`).
* Any problem fails the whole file: every problem is collected, :class:`CsvScoringError` lists
  them, and no output file is left behind (the output is written to a temporary file in the
  same folder and moved into place only on success).

The rows are streamed and written in chunks. Scoring a row is one table lookup per group of
scales (see :mod:`pro_service.file_scoring.csv_plan`), with the same exact arithmetic as
:func:`~pro_service.instruments.scoring.score_instrument`, so both agree to the last bit. A big
file without quotes is scored in blocks of lines with numpy
(:mod:`pro_service.file_scoring.csv_fast`), with the same output, byte for byte; a block that
does not qualify goes through the row path.
"""

from __future__ import annotations

import csv
import difflib
import io
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, partial
from itertools import chain, islice, repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO

from ..instruments.csv_dialect import formula_safe, sniff_csv
from ..instruments.model import Instrument
from ..instruments.registry import InstrumentRegistry
from ..instruments.scoring import describe_codes
from .csv_plan import ColumnPlan, build_plan, question_column

if TYPE_CHECKING:
    from .csv_fast import BlockScorer

#: Rows scored and written at a time (and per progress call); small enough to stay in cache.
CHUNK_ROWS = 250
#: A file without quotes at least this big is scored in blocks of lines with numpy
#: (:mod:`pro_service.file_scoring.csv_fast`), each block that does not qualify in CHUNK_ROWS
#: pieces as before. Below it (about 12,000 rows), importing numpy costs more than it saves.
#: Measured with the pro-service score command on files of 5,000 to 20,000 rows.
FAST_MIN_BYTES = 1_500_000
#: Characters read at a time for numpy blocks (cut at the last line end: about 500 rows). Small
#: enough that a block's arrays and text stay in the CPU's cache and are not fresh memory each
#: time: 64 KB blocks score 100,000 rows in two thirds of the time 1 MB blocks take.
FAST_BYTES = 1 << 16
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
    blank_rows: tuple[int, ...] = ()  # row numbers (the header is row 1) skipped as blank


# --------------------------------------------------------------------------------------------
# Formula-safe cells (OWASP "CSV injection")

#: A cell (in cells joined with NUL) that may need a quote; NUL never occurs in CSV text.
_FORMULA_CELL = re.compile(r"(?:^|\x00)[=+\-@\t\r]")


def _formula_safe_column(column: Sequence[str]) -> Sequence[str]:
    if _FORMULA_CELL.search("\x00".join(column)) is None:
        return column
    return [formula_safe(cell) for cell in column]


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


#: A name that means an answer column: ``Q31``, ``q 31``, ``q_031``, ``item31``, ``31``.
_ANSWER_LIKE = re.compile(r"(?:q|item|question)?[\s_.\-]*0*(\d+)[\s.]*", re.IGNORECASE)
#: How alike (difflib's ratio) a name starting with ``q`` must be to an answer column's name
#: to count as a misspelling of it when extra columns are allowed (``q3l``, ``q10a``).
_NEAR_MISS_RATIO = 0.75


def _answer_name_for(name: str, answer_names: Sequence[str], *, strict: bool) -> str | None:
    """The answer column ``name`` seems meant to be, if any."""
    match = _ANSWER_LIKE.fullmatch(name.strip())
    if match and f"q{match.group(1)}" in answer_names:
        return f"q{match.group(1)}"
    lowered = name.strip().lower()
    if not strict and not lowered.startswith("q"):
        return None
    close = difflib.get_close_matches(
        lowered, answer_names, n=1, cutoff=0.6 if strict else _NEAR_MISS_RATIO
    )
    return close[0] if close else None


def _column_problems(
    header: list[str],
    instruments: Sequence[Instrument],
    score_names: set[str],
    allow_extra_columns: bool,
) -> list[CsvProblem]:
    """Columns that are not answer columns: each one named, with the name it seems meant to be.

    ``score_names`` (reported on their own) are left out.
    """
    answer_names = [question_column(n) for i in instruments for n in i.items]
    known = set(answer_names)
    expected = " and/or ".join(_span(i) for i in instruments)
    problems = []
    for position, name in enumerate(header, start=1):
        if name in known or name in score_names:
            continue
        meant = _answer_name_for(name, answer_names, strict=not allow_extra_columns)
        if not name.strip():
            if allow_extra_columns:
                continue
            reason = f"column {position} has no name; the answer columns are {expected}"
        elif meant is not None:
            reason = f"is not an answer column name: did you mean {meant!r}?"
        elif allow_extra_columns:
            continue
        else:
            reason = (
                f"is not an answer column (the answer columns are {expected}); to copy other "
                "columns through to the output, use --allow-extra-columns"
            )
        problems.append(CsvProblem(1, name, name, reason))
    return problems


def _read_header(
    header: list[str],
    instruments: Sequence[Instrument],
    *,
    keep_answers: bool,
    allow_extra_columns: bool,
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

    score_names = {code for i in present for code in i.score_codes}
    problems.extend(_column_problems(header, instruments, score_names, allow_extra_columns))
    if not present and not problems:
        expected = " and/or ".join(_span(i) for i in instruments)
        problems.append(CsvProblem(1, "", "", f"no answer columns found: expected {expected}"))

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
    allow_extra_columns: bool = False,
) -> CsvScoringResult:
    """Score ``input_path`` into ``output_path`` (see the module docstring).

    ``registry``: the latest version of each of its instruments is used (or pass instruments).
    ``progress(rows_done)`` is called every CHUNK_ROWS rows and at the end. ``keep_answers`` also
    copies the answer columns; ``allow_extra_columns`` copies other columns through instead of
    refusing them. Raises CsvScoringError listing every problem (no output file is
    left), OSError when a file cannot be read or written, ValueError when input and output are
    the same file.
    """
    source = Path(input_path)
    target = Path(output_path)
    if target.exists() and source.exists() and target.resolve() == source.resolve():
        raise ValueError("the output file must not be the input file")
    instruments = _instruments_of(registry)

    layout = sniff_csv(source)
    has_bom = layout.has_bom
    with source.open(encoding="utf-8-sig", newline="") as infile:
        reader = csv.reader(infile, delimiter=layout.delimiter)
        try:
            header = next(reader, None)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise CsvScoringError(source, [_read_problem(source, 1, exc)]) from None
        if header is None:
            raise CsvScoringError(source, [CsvProblem(1, "", "", "the file is empty")])
        present, copied, problems = _read_header(
            header, instruments, keep_answers=keep_answers, allow_extra_columns=allow_extra_columns
        )
        if problems:
            raise CsvScoringError(source, problems)
        positions = {name: index for index, name in enumerate(header)}
        # Built when a chunk goes through the row path (with numpy blocks, maybe never).
        plan = cache(partial(build_plan, present, positions))
        score_columns = tuple(code for i in present for code in i.score_codes)
        out_header = [formula_safe(header[i]) for i in copied] + list(score_columns)
        blank_rows: list[int] = []
        unquoted = not _needs_csv_parser(source)
        fast = None
        if unquoted and source.stat().st_size >= FAST_MIN_BYTES:
            from .csv_fast import BlockScorer

            fast = BlockScorer.for_file(
                present,
                positions,
                copied,
                len(header),
                layout.delimiter,
            )

        handle, temp = _create_temporary(target)
        ok = False
        try:
            with os.fdopen(
                handle, "w", encoding="utf-8-sig" if has_bom else "utf-8", newline=""
            ) as outfile:
                csv.writer(outfile).writerow(out_header)
                rows = _score_rows(
                    source,
                    reader,
                    outfile.write,
                    lines=infile if unquoted else None,
                    fast=fast,
                    delimiter=layout.delimiter,
                    plan=plan,
                    copied=copied,
                    width=len(header),
                    problems=problems,
                    blank_rows=blank_rows,
                    progress=progress,
                )
            if problems:
                # In row order: a chunk reports its short and long rows before its bad cells.
                raise CsvScoringError(source, sorted(problems, key=lambda p: p.row))
            os.replace(temp, target)
            ok = True
        finally:
            if not ok:
                temp.unlink(missing_ok=True)
    return CsvScoringResult(
        rows=rows,
        instruments=tuple(present),
        score_columns=score_columns,
        blank_rows=tuple(blank_rows),
    )


def _create_temporary(target: Path) -> tuple[int, Path]:
    """A new, hidden file next to ``target``, created like any other file (so the umask sets
    its permissions, unlike ``tempfile.mkstemp``'s 0600)."""
    for _ in range(100):
        temp = target.with_name(f".{target.name}.{os.urandom(4).hex()}.partial")
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


def _needs_csv_parser(path: Path) -> bool:
    """Whether the file holds a double quote anywhere. Without one, a line's cells are exactly
    its text cut at the separator (what ``csv.reader`` gives, only faster); with one, a cell may
    hold a separator or a line break."""
    with path.open("rb") as raw:
        while block := raw.read(1 << 20):
            if b'"' in block:
                return True
    return False


def _split_lines(lines: list[str], delimiter: str, width: int) -> list[Sequence[str]] | None:
    """The columns of a chunk of unquoted lines, cut at the separator in one pass; None when a
    line has another number of cells than the header (a blank line, a short or long row) or
    is longer than the csv module takes a cell (``csv.field_size_limit``), so that the chunk is
    parsed, and reported, as ``csv.reader`` does."""
    if set(map(str.count, lines, repeat(delimiter))) != {width - 1}:
        return None
    if max(map(len, lines)) > csv.field_size_limit():
        return None
    text = "".join(lines)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):  # the file's last line
        text += "\n"
    cells = text.replace("\n", delimiter).split(delimiter)
    cells.pop()  # after the last line end
    return [cells[i::width] for i in range(width)]


def _parse_lines(lines: list[str], delimiter: str) -> list[list[str]]:
    """A chunk of unquoted lines parsed by the csv module. Raises csv.Error as it does."""
    return list(csv.reader(lines, delimiter=delimiter))


def _has_blank_line(lines: Sequence[str], delimiter: str) -> bool:
    return not all(map(str.strip, lines, repeat(delimiter + "\r\n")))


def _score_rows(
    source: Path,
    reader: Iterator[list[str]],
    write: Callable[[str], object],
    *,
    plan: Callable[[], ColumnPlan],
    copied: Sequence[int],
    width: int,
    problems: list[CsvProblem],
    blank_rows: list[int],
    progress: Callable[[int], object] | None,
    lines: TextIO | None = None,
    delimiter: str = ",",
    fast: BlockScorer | None = None,
) -> int:
    """Validate and score every row; write while no problem has been found. Returns the rows
    scored; the numbers of blank rows (skipped) are added to ``blank_rows``.

    ``lines``: the file's remaining lines, when it has no quote (:func:`_needs_csv_parser`);
    a chunk of them is then cut into columns in one pass, and only a chunk with a blank or
    irregular row, or a bad cell, is parsed into rows (with ``csv.reader``, as without
    ``lines``). ``fast`` (with ``lines``) scores them in text blocks of whole lines
    (:func:`_text_blocks`); a block it cannot take goes through the above in CHUNK_ROWS lines."""
    taking: Iterator[Any] = reader if lines is None else lines
    source_chunks: Iterator[tuple[Any, bool]] = (
        ((block, True) for block in _text_blocks(lines))
        if fast is not None and lines is not None
        else ((chunk, False) for chunk in iter(lambda: list(islice(taking, CHUNK_ROWS)), []))
    )
    row_number = 1  # the header
    scored = 0
    taken: Any  # a block's text, or a chunk's lines or rows
    while True:
        try:
            taken, whole_block = next(source_chunks, ([], False))
        except (UnicodeDecodeError, csv.Error) as exc:
            problems.append(_read_problem(source, row_number + 1, exc))
            break
        if not taken:
            break
        if whole_block:
            assert fast is not None
            block = fast.score(taken)
            if block is None:  # through the row path, CHUNK_ROWS lines at a time
                text_lines = io.StringIO(taken, newline="").readlines()  # as the file splits
                pieces = [
                    (text_lines[i : i + CHUNK_ROWS], False)
                    for i in range(0, len(text_lines), CHUNK_ROWS)
                ]
                source_chunks = chain(pieces, source_chunks)
                continue
            block_rows, copied_cells, out = block
            row_number += block_rows
            scored += block_rows
            if not problems:
                _write_chunk(write, out, copied_cells, copied, checked=True)
                if progress is not None:
                    progress(row_number - 1)
            continue
        first = row_number + 1
        numbers: Sequence[int] = range(first, first + len(taken))
        row_number += len(taken)
        chunk: list[list[str]] | None
        columns: list[Sequence[str]] | None = None
        if lines is None:
            chunk = taken
        else:
            columns = _split_lines(taken, delimiter, width)
            blank = columns is not None and "" in columns[0] and _has_blank_line(taken, delimiter)
            chunk = None
            if columns is None or blank:
                columns = None
                try:
                    chunk = _parse_lines(taken, delimiter)
                except csv.Error as exc:
                    problems.append(_read_problem(source, first, exc))
                    break
        if columns is None:
            assert chunk is not None
            if len(chunk[0]) != width or len(set(map(len, chunk))) != 1:
                chunk, numbers = _regular_rows(
                    chunk, numbers, width, problems=problems, blank_rows=blank_rows
                )
                if not chunk:
                    continue
            columns = list(zip(*chunk, strict=True))
            if "" in columns[0] and not all(map(any, chunk)):  # rare: look for blank rows
                chunk, numbers = _regular_rows(
                    chunk, numbers, width, problems=problems, blank_rows=blank_rows
                )
                if not chunk:
                    continue
                columns = list(zip(*chunk, strict=True))
        try:
            out = plan().score(columns)
        except KeyError:
            rows = chunk if chunk is not None else _parse_lines(taken, delimiter)
            for number, row in zip(numbers, rows, strict=True):
                problems.extend(_row_problems(number, row, plan().checks))
            continue
        scored += len(numbers)
        if problems:
            continue
        _write_chunk(write, out, columns, copied)
        if progress is not None:
            progress(row_number - 1)
    if progress is not None:
        progress(row_number - 1)
    return scored


def _text_blocks(handle: TextIO) -> Iterator[str]:
    """The rest of ``handle`` in pieces of about FAST_BYTES characters, each ending at a line
    end (the last one at the end of the file). A line end is a ``\n``, or in a piece without
    one, a ``\r`` before its last character (so that a ``\r\n`` is never cut in two); a long
    line is gathered in parts, not copied again for each one."""
    pending: list[str] = []
    while piece := handle.read(FAST_BYTES):
        cut = piece.rfind("\n") + 1 or piece.rfind("\r", 0, len(piece) - 1) + 1
        if not cut:
            pending.append(piece)
            continue
        pending.append(piece[:cut])
        yield "".join(pending)
        pending = [piece[cut:]]
    if rest := "".join(pending):
        yield rest


def _write_chunk(
    write: Callable[[str], object],
    out: list[Sequence[str]],
    columns: Mapping[int, Sequence[str]] | Sequence[Sequence[str]],
    copied: Sequence[int],
    *,
    checked: bool = False,
) -> None:
    """Writes the rows of a chunk: the copied cells, then the score columns ``out``.
    ``checked``: the copied cells are formula-safe already."""
    if copied:
        out.insert(0, _copied_column(columns, copied, checked=checked))
    write("\r\n".join(map(",".join, zip(*out, strict=True))))
    write("\r\n")


def _copied_column(
    columns: Mapping[int, Sequence[str]] | Sequence[Sequence[str]],
    copied: Sequence[int],
    *,
    checked: bool = False,
) -> Sequence[str]:
    """The copied-through cells of each row, as CSV text (quoted only where needed);
    ``checked``: they are formula-safe already."""
    safe = [columns[i] if checked else _formula_safe_column(columns[i]) for i in copied]
    if len(copied) == 1:
        joined: Sequence[str] = safe[0]
    else:
        joined = list(map(",".join, zip(*safe, strict=True)))
    text = "".join(joined)
    if (
        text.count(",") == (len(copied) - 1) * len(joined)
        and '"' not in text
        and "\n" not in text
        and "\r" not in text
    ):
        return joined
    return list(map(_csv_line, zip(*safe, strict=True)))


def _regular_rows(
    chunk: Sequence[list[str]],
    row_numbers: Sequence[int],
    width: int,
    *,
    problems: list[CsvProblem],
    blank_rows: list[int],
) -> tuple[list[list[str]], list[int]]:
    """Drop blank rows (noting their numbers), and report and drop rows of the wrong width."""
    rows: list[list[str]] = []
    numbers: list[int] = []
    for number, row in zip(row_numbers, chunk, strict=True):
        if not any(row):
            blank_rows.append(number)
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
