"""Scoring CSV files: layout, copy-through, missing columns, and all-or-nothing failure."""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

import pytest

from pro_service.file_scoring import CsvProblem, CsvScoringError, csv_scoring
from pro_service.file_scoring import score_csv as _score_csv
from pro_service.instruments import InstrumentRegistry, score_answers

from .conftest import ALL_SCORES, C30_SCALES, PAN26_SCALES, answers

V3 = answers(
    "2 3 2 2 1 3 2 2 3 3 2 2 3 2 1 1 2 3 2 1 2 3 1 2 2 2 3 2 4 5",
    "2 3 2 1 3 2 3 2 1 3 2 2 1 1 1 3 2 2 1 2 4 3 4 3 2 1",
)
V4 = answers(
    "3 . 2 . 1 . 3 . . . 3 3 2 1 . . 1 4 4 2 . 4 . 2 . 1 . . . 3",
    ". . 3 . 2 4 . 1 2 . 3 1 2 . . 2 . . 3 1 3 2 . 2 . .",
)
Q = [f"q{n}" for n in range(1, 57)]

#: Each test runs with the row path and with numpy blocks (see conftest.scoring_path).
pytestmark = pytest.mark.usefixtures("scoring_path")


def score_csv(*args, **kwargs):
    """``score_csv`` with extra columns (the row ids of these files) copied through."""
    kwargs.setdefault("allow_extra_columns", True)
    return _score_csv(*args, **kwargs)


def _cells(vector: dict[int, int | None], numbers: range = range(1, 57)) -> list[str]:
    return ["" if vector[n] is None else str(vector[n]) for n in numbers]


def _write_csv(path: Path, rows: list[list[str]], *, bom: bool = False, newline: str = "\r\n"):
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=newline).writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8-sig" if bom else "utf-8", newline="")
    return path


def _read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle))


def _expected_cells(registry: InstrumentRegistry, vector: dict[int, int | None], codes):
    scores = score_answers(registry.latest(), vector)
    return ["" if scores[c].value is None else str(scores[c].value) for c in codes]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path


def test_scores_follow_the_copied_columns_in_the_documented_order(
    registry: InstrumentRegistry, folder: Path
):
    source = _write_csv(folder / "in.csv", [["study_id", *Q], ["SP-001", *_cells(V3)]])
    result = score_csv(source, folder / "out.csv", registry)
    header, row = _read_csv(folder / "out.csv")
    assert header == ["study_id", *ALL_SCORES]
    assert " ".join(ALL_SCORES) == (
        "QL2 PF2 RF2 EF CF SF FA NV PA DY SL AP CO DI FI C30_SUMMARY PAN_PP PAN_BF PAN_DS "
        "PAN_TA PAN_ID PAN_FL PAN_WL PAN_WE PAN_DM PAN_LI PAN_BO PAN_BI PAN_SE PAN_FU PAN_PL "
        "PAN_SA PAN_SX"
    )
    assert row == ["SP-001", *_expected_cells(registry, V3, ALL_SCORES)]
    assert row[ALL_SCORES.index("C30_SUMMARY") + 1] == str(7450 / 117)
    assert result.rows == 1
    assert result.score_columns == ALL_SCORES
    assert [i.id for i in result.instruments] == ["qlq-c30", "qlq-pan26"]


def test_values_are_unrounded_and_round_trip_exactly(registry: InstrumentRegistry, folder: Path):
    source = _write_csv(folder / "in.csv", [Q, _cells(V3)])
    score_csv(source, folder / "out.csv", registry)
    header, row = _read_csv(folder / "out.csv")
    scores = score_answers(registry.latest(), V3)
    for code, cell in zip(header, row, strict=True):
        assert float(cell) == scores[code].value
    assert row[header.index("FA")] == "55.55555555555556"  # 500/9, not 55.56


def test_extra_columns_are_copied_through_unchanged_and_in_order(
    registry: InstrumentRegistry, folder: Path
):
    header = ["site", *Q[:10], "visit", *Q[10:], "note, with comma", "empty"]
    row = [
        "Lund",
        *_cells(V3)[:10],
        'month 3 "post-op"',
        *_cells(V3)[10:],
        "line one\nline two",
        "",
    ]
    source = _write_csv(
        folder / "in.csv",
        [header, row, ["Åbo", *_cells(V4)[:10], "", *_cells(V4)[10:], "ä ö, å", ""]],
    )
    score_csv(source, folder / "out.csv", registry)
    out = _read_csv(folder / "out.csv")
    assert out[0] == ["site", "visit", "note, with comma", "empty", *ALL_SCORES]
    assert out[1][:4] == ["Lund", 'month 3 "post-op"', "line one\nline two", ""]
    assert out[2][:4] == ["Åbo", "", "ä ö, å", ""]
    assert out[1][4:] == _expected_cells(registry, V3, ALL_SCORES)
    assert out[2][4:] == _expected_cells(registry, V4, ALL_SCORES)


def test_blank_cells_are_missing_answers_and_missing_scores_are_blank(
    registry: InstrumentRegistry, folder: Path
):
    source = _write_csv(folder / "in.csv", [["id", *Q], ["a", *_cells(V4)], ["b", *[""] * 56]])
    score_csv(source, folder / "out.csv", registry)
    _, v4_row, empty_row = _read_csv(folder / "out.csv")
    cells = dict(zip(ALL_SCORES, v4_row[1:], strict=True))
    assert cells["DY"] == cells["CO"] == cells["FI"] == cells["C30_SUMMARY"] == ""
    assert cells["PAN_SX"] == cells["PAN_BF"] == ""
    assert cells["PF2"] == str(200 / 3)
    assert empty_row == ["b"] + [""] * len(ALL_SCORES)


@pytest.mark.parametrize(
    ("numbers", "scores"),
    [
        pytest.param(range(1, 31), [*C30_SCALES, "C30_SUMMARY"], id="only-c30"),
        pytest.param(range(31, 57), list(PAN26_SCALES), id="only-pan26"),
    ],
)
def test_an_absent_instrument_is_not_scored(
    registry: InstrumentRegistry, folder: Path, numbers: range, scores: list[str]
):
    source = _write_csv(
        folder / "in.csv", [["id", *(f"q{n}" for n in numbers)], ["a", *_cells(V3, numbers)]]
    )
    result = score_csv(source, folder / "out.csv", registry)
    header, row = _read_csv(folder / "out.csv")
    assert header == ["id", *scores]
    assert row[1:] == _expected_cells(registry, V3, scores)
    assert result.score_columns == tuple(scores)


def test_some_but_not_all_columns_of_an_instrument_is_an_error_naming_them(
    registry: InstrumentRegistry, folder: Path
):
    header = ["id", *(q for q in Q if q not in ("q7", "q30", "q44"))]
    source = _write_csv(folder / "in.csv", [header, ["a", *["1"] * 53]])
    with pytest.raises(CsvScoringError) as raised:
        score_csv(source, folder / "out.csv", registry)
    messages = [str(p) for p in raised.value.problems]
    assert messages == [
        "row 1: qlq-c30 3.0 needs all of q1-q30 (qlq-c30 3.0), "
        "but these columns are missing: q7, q30",
        "row 1: qlq-pan26 1.0 needs all of q31-q56 (qlq-pan26 1.0), "
        "but these columns are missing: q44",
    ]
    assert not (folder / "out.csv").exists()


def test_every_problem_is_reported_and_no_output_is_left(
    registry: InstrumentRegistry, folder: Path
):
    good = _cells(V3)
    rows = [["id", *Q]]
    for i in range(12):
        rows.append([f"r{i}", *good])
    rows[6][3] = "5"  # row 7, q3
    rows[6][30] = "8"  # row 7, q30 (1-7)
    rows[9][12] = "2.5"  # row 10, q12
    rows[11][1] = "x"  # row 12, q1
    rows[11][56] = "0"  # row 12, q56
    rows[12][20] = "3.0"  # row 13, q20
    rows[4] = rows[4][:-2]  # row 5: two cells short
    rows.append([f"r{12}", *good[:40], "NA", *good[41:]])  # row 14, q41
    source = _write_csv(folder / "in.csv", rows)
    previous = folder / "out.csv"
    previous.write_text("an older output, kept\n", encoding="utf-8")

    with pytest.raises(CsvScoringError) as raised:
        score_csv(source, previous, registry)

    assert [str(p) for p in raised.value.problems] == [
        "row 5: has 55 cells, the header has 57",
        "row 7, column q3: '5' is not a valid answer (allowed 1-4)",
        "row 7, column q30: '8' is not a valid answer (allowed 1-7)",
        "row 10, column q12: '2.5' is not a valid answer (allowed 1-4)",
        "row 12, column q1: 'x' is not a valid answer (allowed 1-4)",
        "row 12, column q56: '0' is not a valid answer (allowed 1-4)",
        "row 13, column q20: '3.0' is not a valid answer "
        "(allowed 1-4; write whole numbers without decimals)",
        "row 14, column q41: 'NA' is not a valid answer "
        "(allowed 1-4; leave the cell empty for a missing answer)",
    ]
    assert raised.value.problems[1] == CsvProblem(
        7, "q3", "5", "is not a valid answer (allowed 1-4)"
    )
    assert str(raised.value).startswith(f"{source}: 8 problems, nothing was scored\n")
    assert previous.read_text(encoding="utf-8") == "an older output, kept\n"
    assert sorted(p.name for p in folder.iterdir()) == ["in.csv", "out.csv"]  # no temp file


def test_problems_in_every_chunk_are_collected(
    registry: InstrumentRegistry, folder: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(csv_scoring, "CHUNK_ROWS", 3)
    rows = [["id", *Q]] + [[f"r{i}", *_cells(V3)] for i in range(10)]
    for r in (2, 5, 9):
        rows[r][17] = " 3"
    source = _write_csv(folder / "in.csv", rows)
    with pytest.raises(CsvScoringError) as raised:
        score_csv(source, folder / "out.csv", registry)
    assert [(p.row, p.column) for p in raised.value.problems] == [
        (3, "q17"),
        (6, "q17"),
        (10, "q17"),
    ]
    assert "remove the spaces" in raised.value.problems[0].reason
    assert list(folder.iterdir()) == [source]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        pytest.param(["id", *Q, "q3"], "row 1, column q3: 'q3' appears more than once", id="dup"),
        pytest.param(
            ["id", *Q, "PF2"], "row 1, column PF2: 'PF2' is the name of a score column", id="clash"
        ),
        pytest.param(
            ["id", "name"],
            "row 1: no answer columns found: expected q1-q30 (qlq-c30 3.0) "
            "and/or q31-q56 (qlq-pan26 1.0)",
            id="none",
        ),
        pytest.param(
            ["id", "Q1", "Q2"],
            "row 1, column Q1: 'Q1' is not an answer column name: did you mean 'q1'?",
            id="upper-case",
        ),
    ],
)
def test_header_problems_are_reported(
    registry: InstrumentRegistry, folder: Path, header: list[str], message: str
):
    source = _write_csv(folder / "in.csv", [header])
    with pytest.raises(CsvScoringError) as raised:
        score_csv(source, folder / "out.csv", registry)
    assert any(message in str(p) for p in raised.value.problems), raised.value
    assert not (folder / "out.csv").exists()


def test_an_empty_file_is_an_error(registry: InstrumentRegistry, folder: Path):
    source = folder / "in.csv"
    source.write_bytes(b"")
    with pytest.raises(CsvScoringError, match="row 1: the file is empty"):
        score_csv(source, folder / "out.csv", registry)


def test_a_header_only_file_gives_a_header_only_output(registry: InstrumentRegistry, folder: Path):
    source = _write_csv(folder / "in.csv", [["id", *Q]])
    assert score_csv(source, folder / "out.csv", registry).rows == 0
    assert _read_csv(folder / "out.csv") == [["id", *ALL_SCORES]]


def test_utf8_with_bom_is_accepted_and_the_bom_kept(registry: InstrumentRegistry, folder: Path):
    source = _write_csv(folder / "in.csv", [["id", *Q], ["Ä-1", *_cells(V3)]], bom=True)
    assert source.read_bytes().startswith(b"\xef\xbb\xbfid,")
    score_csv(source, folder / "out.csv", registry)
    data = (folder / "out.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbfid,QL2,")
    assert _read_csv(folder / "out.csv")[1][0] == "Ä-1"


def test_utf8_without_bom_gives_no_bom(registry: InstrumentRegistry, folder: Path):
    source = _write_csv(folder / "in.csv", [["id", *Q], ["a", *_cells(V3)]], newline="\n")
    score_csv(source, folder / "out.csv", registry)
    assert (folder / "out.csv").read_bytes().startswith(b"id,QL2,")


def test_text_that_is_not_utf8_is_an_error_with_its_row(registry: InstrumentRegistry, folder: Path):
    source = _write_csv(folder / "in.csv", [["id", *Q], ["a", *_cells(V3)], ["b", *_cells(V3)]])
    source.write_bytes(source.read_bytes().replace(b"b,", "Å,".encode("latin-1"), 1))
    with pytest.raises(CsvScoringError) as raised:
        score_csv(source, folder / "out.csv", registry)
    assert str(raised.value.problems[0]) == (
        "row 3: the file is not UTF-8 text (save it as CSV UTF-8)"
    )
    assert list(folder.iterdir()) == [source]


def test_blank_lines_are_skipped_but_counted_as_rows(registry: InstrumentRegistry, folder: Path):
    text = ",".join(["id", *Q]) + "\n\n" + ",".join(["a", *_cells(V3)]) + "\n"
    bad = ",".join(["b", "9", *_cells(V3)[1:]]) + "\n"
    source = folder / "in.csv"
    source.write_text(text + "\n" + bad, encoding="utf-8")
    with pytest.raises(CsvScoringError) as raised:
        score_csv(source, folder / "out.csv", registry)
    assert [str(p) for p in raised.value.problems] == [
        "row 5, column q1: '9' is not a valid answer (allowed 1-4)"
    ]
    source.write_text(text, encoding="utf-8")
    assert score_csv(source, folder / "out.csv", registry).rows == 1


def test_csv_scores_equal_score_answers_bit_for_bit(registry: InstrumentRegistry, folder: Path):
    rng = random.Random(20250101)
    vectors = []
    for _ in range(400):
        blank = rng.choice([0.0, 0.05, 0.3, 0.7])
        vectors.append(
            {
                n: None if rng.random() < blank else rng.randint(1, 7 if n in (29, 30) else 4)
                for n in range(1, 57)
            }
        )
    rows = [["id", *Q]] + [[str(i), *_cells(v)] for i, v in enumerate(vectors)]
    source = _write_csv(folder / "in.csv", rows)
    score_csv(source, folder / "out.csv", registry)
    out = _read_csv(folder / "out.csv")
    for vector, row in zip(vectors, out[1:], strict=True):
        assert row[1:] == _expected_cells(registry, vector, ALL_SCORES)


def test_keep_answers_copies_the_answer_columns_too(registry: InstrumentRegistry, folder: Path):
    source = _write_csv(folder / "in.csv", [["id", *Q], ["a", *_cells(V4)]])
    score_csv(source, folder / "out.csv", registry, keep_answers=True)
    header, row = _read_csv(folder / "out.csv")
    assert header == ["id", *Q, *ALL_SCORES]
    assert row[:57] == ["a", *_cells(V4)]


def test_progress_reports_rows_done(
    registry: InstrumentRegistry, folder: Path, monkeypatch: pytest.MonkeyPatch, scoring_path: str
):
    monkeypatch.setattr(csv_scoring, "CHUNK_ROWS", 4)
    rows = [["id", *Q]] + [[str(i), *_cells(V3)] for i in range(10)]
    source = _write_csv(folder / "in.csv", rows)
    seen: list[int] = []
    result = score_csv(source, folder / "out.csv", registry, progress=seen.append)
    assert result.rows == 10
    assert seen[-1] == 10
    assert seen == sorted(seen)
    assert (seen[0] == 4) if scoring_path == "rows" else (0 < seen[0] < 10)


def test_output_must_not_be_the_input(registry: InstrumentRegistry, folder: Path):
    source = _write_csv(folder / "in.csv", [["id", *Q], ["a", *_cells(V3)]])
    before = source.read_bytes()
    with pytest.raises(ValueError, match="must not be the input"):
        score_csv(source, source, registry)
    assert source.read_bytes() == before


def test_missing_input_and_output_folder_raise_os_errors(
    registry: InstrumentRegistry, folder: Path
):
    with pytest.raises(FileNotFoundError):
        score_csv(folder / "nope.csv", folder / "out.csv", registry)
    source = _write_csv(folder / "in.csv", [["id", *Q], ["a", *_cells(V3)]])
    with pytest.raises(FileNotFoundError):
        score_csv(source, folder / "no-such-folder" / "out.csv", registry)


@pytest.mark.parametrize("value", ["a,b", 'say "hi"', "two\nlines", "cr\ronly", "", " spaced "])
def test_a_single_copied_column_keeps_any_text(
    registry: InstrumentRegistry, folder: Path, value: str
):
    source = _write_csv(folder / "in.csv", [[*Q, "id"], [*_cells(V3), value], [*_cells(V4), "x"]])
    score_csv(source, folder / "out.csv", registry)
    out = _read_csv(folder / "out.csv")
    assert [row[0] for row in out] == ["id", value, "x"]
    assert out[1][1:] == _expected_cells(registry, V3, ALL_SCORES)


def test_output_permissions_follow_the_umask(registry: InstrumentRegistry, folder: Path):
    import os

    source = _write_csv(folder / "in.csv", [["id", *Q], ["a", *_cells(V3)]])
    old = os.umask(0o027)
    try:
        score_csv(source, folder / "out.csv", registry)
    finally:
        os.umask(old)
    assert (folder / "out.csv").stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize(("table_limit", "prefill_limit"), [(1, 0), (1024, 0), (10**6, 10)])
def test_scores_are_the_same_however_the_tables_are_grouped_and_filled(
    registry: InstrumentRegistry,
    folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    table_limit: int,
    prefill_limit: int,
):
    from pro_service.file_scoring import csv_plan

    monkeypatch.setattr(csv_plan, "TABLE_LIMIT", table_limit)
    monkeypatch.setattr(csv_plan, "PREFILL_LIMIT", prefill_limit)
    rng = random.Random(table_limit + prefill_limit)
    vectors = [
        {
            n: None if rng.random() < 0.2 else rng.randint(1, 7 if n in (29, 30) else 4)
            for n in range(1, 57)
        }
        for _ in range(150)
    ]
    vectors += [V3, V4]
    rows = [["id", *Q]] + [[str(i), *_cells(v)] for i, v in enumerate(vectors)]
    bad = [row[:] for row in rows[1:4]]
    bad[1][5] = "7"
    source = _write_csv(folder / "in.csv", rows)
    score_csv(source, folder / "out.csv", registry)
    for vector, row in zip(vectors, _read_csv(folder / "out.csv")[1:], strict=True):
        assert row[1:] == _expected_cells(registry, vector, ALL_SCORES)
    # A bad cell is still caught when its table fills lazily.
    _write_csv(folder / "bad.csv", [rows[0], *bad])
    with pytest.raises(CsvScoringError, match="row 3, column q5: '7'"):
        score_csv(folder / "bad.csv", folder / "bad-out.csv", registry)
