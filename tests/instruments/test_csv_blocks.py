"""Big files are scored in numpy blocks: the output must be the row path's, byte for byte, in
every layout users' files come in, and a block that does not qualify must be reported exactly
as the row path reports it."""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest

from pro_service.file_scoring import CsvScoringError, csv_scoring, score_csv
from pro_service.file_scoring.csv_fast import BlockScorer
from pro_service.instruments import InstrumentRegistry

Q = [f"q{n}" for n in range(1, 57)]
#: Characters read per block in these tests: 60 lines of 130 (an ID, 56 cells and their commas)
BLOCK = 60 * 130
HIGHEST = {29: 7, 30: 7}


def _rows(count: int, seed: int, blank_rate: float = 0.08) -> list[list[str]]:
    rng = random.Random(seed)
    return [
        [
            "" if rng.random() < blank_rate else str(rng.randint(1, HIGHEST.get(n, 4)))
            for n in range(1, 57)
        ]
        for _ in range(count)
    ]


def _ids(count: int) -> list[str]:
    # Some a spreadsheet would run as a formula; they get the same ' in front on both paths.
    special = {3: "=1+1", 7: "-x", 11: "@home", 13: "+46"}
    return [special.get(i, f"SP-{i:05d}") for i in range(count)]


def _text(
    header: list[str], rows: list[list[str]], *, delimiter: str, newline: str, last_newline: bool
) -> str:
    lines = [delimiter.join(cells) for cells in [header, *rows]]
    return newline.join(lines) + (newline if last_newline else "")


def _layout_plain(rows: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    return ["study_id", *Q], [[i, *cells] for i, cells in zip(_ids(len(rows)), rows, strict=True)]


def _layout_mixed(rows: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    """Answer columns in another order, with extra columns before, between and after them."""
    order = list(range(56))
    random.Random(5).shuffle(order)
    header = ["visit", *(Q[j] for j in order[:20]), "site", *(Q[j] for j in order[20:]), "note"]
    out = []
    for i, (name, cells) in enumerate(zip(_ids(len(rows)), rows, strict=True)):
        out.append(
            [name, *(cells[j] for j in order[:20]), "", *(cells[j] for j in order[20:]), str(i)]
        )
    return header, out


def _layout_answers_only(rows: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    """Only the QLQ-PAN26 answer columns, the first of them at the line start."""
    return Q[30:], [cells[30:] for cells in rows]


LAYOUTS: dict[str, Callable[..., tuple[list[str], list[list[str]]]]] = {
    "plain": _layout_plain,
    "mixed": _layout_mixed,
    "answers-only": _layout_answers_only,
}


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Records, for each block offered to numpy, whether it was scored there."""
    taken: list[bool] = []
    score = BlockScorer.score

    def spy(self: BlockScorer, lines):  # type: ignore[no-untyped-def]
        result = score(self, lines)
        taken.append(result is not None)
        return result

    monkeypatch.setattr(BlockScorer, "score", spy)
    return taken


def _both_paths(
    source: Path, folder: Path, registry: InstrumentRegistry, monkeypatch, **options
) -> tuple[object, object, list[bool]]:
    """(row path outcome, block path outcome, which blocks numpy scored)."""

    def outcome(name: str) -> object:
        target = folder / name
        try:
            result = score_csv(source, target, registry, **options)
        except CsvScoringError as exc:
            assert not target.exists()
            return ("problems", [str(p) for p in exc.problems])
        return ("scored", result.rows, result.blank_rows, target.read_bytes())

    with monkeypatch.context() as patch:
        patch.setattr(csv_scoring, "FAST_MIN_BYTES", 1 << 62)
        rows_outcome = outcome("rows.csv")
    with monkeypatch.context() as patch:
        patch.setattr(csv_scoring, "FAST_MIN_BYTES", 0)
        patch.setattr(csv_scoring, "FAST_BYTES", BLOCK)
        taken = _spy(patch)
        blocks_outcome = outcome("blocks.csv")
    return rows_outcome, blocks_outcome, taken


def _score_lines(
    header: list[str],
    rows: list[list[str]],
    folder: Path,
    registry: InstrumentRegistry,
    monkeypatch: pytest.MonkeyPatch,
    *,
    newline: str = "\n",
) -> tuple[object, object, list[bool]]:
    """:func:`_both_paths` for a comma-separated file of ``header`` and ``rows``."""
    source = folder / "answers.csv"
    source.write_text(_text(header, rows, delimiter=",", newline=newline, last_newline=True))
    return _both_paths(source, folder, registry, monkeypatch, allow_extra_columns=True)


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize(
    ("delimiter", "newline", "bom", "last_newline"),
    [
        (",", "\r\n", False, True),
        (",", "\n", False, False),
        (";", "\r\n", True, True),
        ("\t", "\n", True, False),
    ],
    ids=["comma-crlf", "comma-lf-no-last-newline", "semicolon-bom", "tab-bom-no-last-newline"],
)
def test_blocks_give_the_row_paths_output_byte_for_byte(
    registry: InstrumentRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    layout: str,
    delimiter: str,
    newline: str,
    bom: bool,
    last_newline: bool,
):
    header, rows = LAYOUTS[layout](_rows(300, seed=len(layout) + len(delimiter)))
    if delimiter == ";" and layout != "answers-only":
        rows[5][0] = "SP,5"  # a comma inside a cell: quoted in the comma-separated output
    text = _text(header, rows, delimiter=delimiter, newline=newline, last_newline=last_newline)
    source = tmp_path / "answers.csv"
    source.write_text(text, encoding="utf-8-sig" if bom else "utf-8", newline="")

    for keep_answers in (False, True):
        by_rows, by_blocks, taken = _both_paths(
            source,
            tmp_path,
            registry,
            monkeypatch,
            allow_extra_columns=True,
            keep_answers=keep_answers,
        )
        assert by_rows[0] == "scored"
        assert by_blocks == by_rows
        assert len(taken) >= 2 and all(taken)  # every block scored by numpy


def test_a_block_with_a_problem_is_reported_as_the_row_path_reports_it(
    registry: InstrumentRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    header, rows = _layout_plain(_rows(300, seed=3))
    rows[70][4] = "5"  # q4 is 1-4
    rows[71][29] = "3.0"  # q29
    rows[140] = [""] * 57  # a blank row
    rows[200] = rows[200][:-1]  # a short row
    rows[250][10] = " 2"
    by_rows, by_blocks, taken = _score_lines(
        header, rows, tmp_path, registry, monkeypatch, newline="\r\n"
    )
    assert by_rows[0] == "problems"
    assert by_blocks == by_rows
    assert len(by_rows[1]) == 4  # type: ignore[index]
    assert "row 72, column q4: '5' is not a valid answer" in by_rows[1][0]  # type: ignore[index]
    # The blocks (of about 65 rows) holding rows 72-73, 142 (blank), 202 and 252 went through
    # the row path; after the first problem, the others are still checked.
    assert taken.count(False) >= 3
    assert taken[0] and taken[-1]


def test_a_blank_row_alone_is_skipped_and_reported_on_both_paths(
    registry: InstrumentRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    header, rows = _layout_plain(_rows(200, seed=4))
    rows[100] = [""] * 57
    by_rows, by_blocks, taken = _score_lines(header, rows, tmp_path, registry, monkeypatch)
    assert by_rows[:3] == ("scored", 199, (102,))
    assert by_blocks == by_rows
    assert taken.count(False) == 1 and len(taken) >= 3


def test_a_non_ascii_block_goes_through_the_row_path(
    registry: InstrumentRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    header, rows = _layout_plain(_rows(130, seed=6))
    rows[3][0] = "Åbo-3"
    by_rows, by_blocks, taken = _score_lines(header, rows, tmp_path, registry, monkeypatch)
    assert by_rows[0] == "scored"
    assert by_blocks == by_rows
    assert "Åbo-3".encode() in by_rows[3]  # type: ignore[operator,index]
    assert taken[0] is False and taken.count(False) == 1 and len(taken) >= 2


def test_instruments_that_do_not_suit_blocks_are_scored_by_rows(
    registry: InstrumentRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A summary with more totals than SUMMARY_LIMIT (or a code of two digits, or a very long
    scale) keeps the whole file on the row path, with the same output."""
    from pro_service.file_scoring import csv_fast

    header, rows = _layout_plain(_rows(200, seed=7))
    monkeypatch.setattr(csv_fast, "SUMMARY_LIMIT", 2000)  # QLQ-C30's summary has 2,340 totals
    by_rows, by_blocks, taken = _score_lines(header, rows, tmp_path, registry, monkeypatch)
    assert by_rows[0] == "scored"
    assert by_blocks == by_rows
    assert taken == []


def test_a_file_with_carriage_returns_only_is_read_in_pieces_and_scored_by_rows(
    registry: InstrumentRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Lines ended by a lone carriage return (old Mac files): the blocks are cut there too, so
    the file is still read a piece at a time; the row path scores them, as it always has."""
    header, rows = _layout_plain(_rows(200, seed=8))
    by_rows, by_blocks, taken = _score_lines(
        header, rows, tmp_path, registry, monkeypatch, newline="\r"
    )
    assert by_rows[:3] == ("scored", 200, ())
    assert by_blocks == by_rows
    assert taken.count(False) >= 3  # (a last block of one line may suit numpy)


def test_text_blocks_end_at_line_ends_and_gather_long_lines(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(csv_scoring, "FAST_BYTES", 10)
    text = "a,b\r\n" + "x" * 35 + "\r\nc,d\r\ne\rf\r" + "g" * 12
    blocks = list(csv_scoring._text_blocks(io.StringIO(text, newline="")))
    assert "".join(blocks) == text
    assert all(block.endswith(("\n", "\r")) for block in blocks[:-1])
    for block, following in pairwise(blocks):  # a "\r\n" is never cut in two
        assert not (block.endswith("\r") and following.startswith("\n"))
    assert any(len(block) > 35 for block in blocks)  # the long line, gathered whole
