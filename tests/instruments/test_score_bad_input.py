"""``pro-service score`` with the files users really have: mis-named columns, semicolons, a
byte-order mark, blank rows and cells a spreadsheet would run as formulas."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from flask import Flask

from pro_service import create_app
from pro_service.cli import import_patients
from pro_service.file_scoring import CsvScoringError, csv_scoring, score_csv
from pro_service.file_scoring.csv_scoring import formula_safe
from pro_service.instruments import InstrumentRegistry
from pro_service.instruments.csv_dialect import CsvLayout, sniff_csv

from .conftest import ALL_SCORES, C30_SCALES

Q = [f"q{n}" for n in range(1, 57)]

#: Each test runs with the row path and with numpy blocks (see conftest.scoring_path).
pytestmark = pytest.mark.usefixtures("scoring_path")
GOOD = ["2", "3", "2", "2", "1", "3", "2", "2", "3", "3"] * 5 + ["1", "2", "3", "4", "1", "2"]


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return create_app(
        {
            "env": "test",
            "database_url": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
            "instance_dir": tmp_path / "instance",
            "TESTING": True,
        }
    )


def _write(path: Path, rows: list[list[str]], *, delimiter: str = ",", bom: bool = False) -> Path:
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        csv.writer(handle, delimiter=delimiter).writerows(rows)
    return path


def _read(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.reader(handle))


def _invoke(app: Flask, *args: str):
    return app.test_cli_runner().invoke(args=["score", *args])


# --------------------------------------------------------------------------------------------
# Column names


@pytest.mark.parametrize("wrong", ["Q31", "q31 ", " q31", "q_31", "Q 31", "q031"])
@pytest.mark.parametrize("allow", [False, True], ids=["strict", "extra-columns-allowed"])
def test_a_misnamed_answer_column_fails_naming_it_and_the_expected_name(
    app: Flask, tmp_path: Path, wrong: str, allow: bool
):
    header = [*Q[:30], wrong, *Q[31:]]
    source = _write(tmp_path / "answers.csv", [header, GOOD])
    target = tmp_path / "scores.csv"
    result = _invoke(
        app, *(["--allow-extra-columns"] if allow else []), str(source), "-o", str(target)
    )
    assert result.exit_code == 1
    assert (
        f"row 1, column {wrong}: {wrong!r} is not an answer column name: did you mean 'q31'?"
        in (result.stderr)
    )
    assert "these columns are missing: q31" in result.stderr
    assert not target.exists()


def test_upper_case_columns_of_a_whole_instrument_are_each_named(app: Flask, tmp_path: Path):
    header = [*Q[:30], *(name.upper() for name in Q[30:])]
    source = _write(tmp_path / "answers.csv", [header, GOOD])
    result = _invoke(app, str(source), "-o", str(tmp_path / "scores.csv"))
    assert result.exit_code == 1
    for number in range(31, 57):
        assert f"'Q{number}' is not an answer column name: did you mean 'q{number}'?" in (
            result.stderr
        )
    assert not (tmp_path / "scores.csv").exists()


def test_an_extra_column_is_refused_unless_allowed(app: Flask, tmp_path: Path):
    source = _write(tmp_path / "answers.csv", [["study_id", *Q], ["SP-1", *GOOD]])
    target = tmp_path / "scores.csv"
    result = _invoke(app, str(source), "-o", str(target))
    assert result.exit_code == 1
    assert (
        "row 1, column study_id: 'study_id' is not an answer column (the answer columns are "
        "q1-q30 (qlq-c30 3.0) and/or q31-q56 (qlq-pan26 1.0)); to copy other columns through "
        "to the output, use --allow-extra-columns"
    ) in result.stderr
    assert not target.exists()

    result = _invoke(app, "--allow-extra-columns", str(source), "-o", str(target))
    assert result.exit_code == 0, result.output
    assert _read(target)[0] == ["study_id", *ALL_SCORES]
    assert _read(target)[1][0] == "SP-1"


def test_a_file_of_answer_columns_only_needs_no_option(app: Flask, tmp_path: Path):
    source = _write(tmp_path / "answers.csv", [Q, GOOD])
    result = _invoke(app, str(source), "-o", str(tmp_path / "scores.csv"))
    assert result.exit_code == 0, result.output
    assert _read(tmp_path / "scores.csv")[0] == list(ALL_SCORES)


def test_strict_mode_suggests_the_closest_answer_column(
    registry: InstrumentRegistry, tmp_path: Path
):
    source = _write(tmp_path / "in.csv", [[*Q[:2], "q3l", *Q[3:30]]])
    with pytest.raises(CsvScoringError) as raised:
        score_csv(source, tmp_path / "out.csv", registry)
    assert "row 1, column q3l: 'q3l' is not an answer column name: did you mean 'q3'?" in [
        str(p) for p in raised.value.problems
    ]


def test_allowed_extra_columns_are_not_mistaken_for_answer_columns(
    registry: InstrumentRegistry, tmp_path: Path
):
    header = ["study_id", "visit", "eq5d", "qol_comment", "", *Q[:30]]
    source = _write(tmp_path / "in.csv", [header, ["SP-1", "m3", "0.8", "ok", "", *GOOD[:30]]])
    result = score_csv(source, tmp_path / "out.csv", registry, allow_extra_columns=True)
    assert result.rows == 1
    out = _read(tmp_path / "out.csv")
    assert out[0] == [*header[:5], *C30_SCALES, "C30_SUMMARY"]
    assert out[1][:5] == ["SP-1", "m3", "0.8", "ok", ""]


def test_a_near_miss_is_an_error_even_when_extra_columns_are_allowed(
    registry: InstrumentRegistry, tmp_path: Path
):
    source = _write(tmp_path / "in.csv", [["id", *Q[:30], "q10a"]])
    with pytest.raises(CsvScoringError) as raised:
        score_csv(source, tmp_path / "out.csv", registry, allow_extra_columns=True)
    assert [str(p) for p in raised.value.problems] == [
        "row 1, column q10a: 'q10a' is not an answer column name: did you mean 'q10'?"
    ]


def test_an_unnamed_column_is_refused_in_strict_mode(registry: InstrumentRegistry, tmp_path: Path):
    source = _write(tmp_path / "in.csv", [[*Q, ""], [*GOOD, ""]])
    with pytest.raises(CsvScoringError) as raised:
        score_csv(source, tmp_path / "out.csv", registry)
    assert "column 57 has no name" in str(raised.value)


# --------------------------------------------------------------------------------------------
# Separators and byte-order mark, as import-patients reads them


@pytest.mark.parametrize("delimiter", [";", "\t"], ids=["semicolons", "tabs"])
@pytest.mark.parametrize("bom", [False, True], ids=["no-bom", "bom"])
def test_semicolon_and_tab_files_score_like_comma_files(
    app: Flask, tmp_path: Path, delimiter: str, bom: bool
):
    rows = [["study_id", "note", *Q], ["SP-1", "1,5 cm", *GOOD], ["SP-2", "", *GOOD]]
    comma = _write(tmp_path / "comma.csv", rows, bom=bom)
    other = _write(tmp_path / "other.csv", rows, delimiter=delimiter, bom=bom)
    assert sniff_csv(other) == CsvLayout(delimiter, bom)
    for source, target in ((comma, "comma-out.csv"), (other, "other-out.csv")):
        result = _invoke(app, "--allow-extra-columns", str(source), "-o", str(tmp_path / target))
        assert result.exit_code == 0, result.output
    expected = (tmp_path / "comma-out.csv").read_bytes()
    assert (tmp_path / "other-out.csv").read_bytes() == expected
    assert expected.startswith(b"\xef\xbb\xbfstudy_id," if bom else b"study_id,")
    assert _read(tmp_path / "other-out.csv")[1][:2] == ["SP-1", "1,5 cm"]


def test_a_byte_order_mark_never_stays_in_the_first_column_name(
    registry: InstrumentRegistry, tmp_path: Path
):
    source = _write(tmp_path / "in.csv", [Q, GOOD], delimiter=";", bom=True)
    score_csv(source, tmp_path / "out.csv", registry)  # q1 is recognised, not "\ufeffq1"
    assert _read(tmp_path / "out.csv")[0] == list(ALL_SCORES)


def test_import_patients_reads_separators_with_the_same_helper():
    assert import_patients.sniff_csv is sniff_csv


@pytest.mark.parametrize(
    ("first_line", "layout"),
    [
        (b"a,b,c\r\n", CsvLayout(",", False)),
        (b"\xef\xbb\xbfa;b;c\n", CsvLayout(";", True)),
        (b"a\tb\n", CsvLayout("\t", False)),
        (b"a;b,c;d\n", CsvLayout(";", False)),
        (b"single\n", CsvLayout(",", False)),
        (b"", CsvLayout(",", False)),
    ],
)
def test_sniff_csv(tmp_path: Path, first_line: bytes, layout: CsvLayout):
    path = tmp_path / "f.csv"
    path.write_bytes(first_line + b"1;2,3\n")
    assert sniff_csv(path) == layout


# --------------------------------------------------------------------------------------------
# Blank rows


def test_blank_rows_are_skipped_and_reported(app: Flask, tmp_path: Path):
    source = tmp_path / "answers.csv"
    width = len(Q) + 1
    source.write_text(
        "\r\n".join(
            [
                ",".join(["id", *Q]),
                ",".join(["a", *GOOD]),
                "," * (width - 1),  # every cell empty
                "",  # an empty line
                ",".join(["b", *GOOD]),
                "," * 3,  # a short row of empty cells is blank too
            ]
        )
        + "\r\n",
        encoding="utf-8",
    )
    target = tmp_path / "scores.csv"
    result = _invoke(app, "--allow-extra-columns", str(source), "-o", str(target))
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == (
        "Skipped 3 blank rows (rows 3, 4, 6): no output rows for them"
    )
    assert "Scored 2 rows" in result.stderr
    assert [row[0] for row in _read(target)] == ["id", "a", "b"]


def test_blank_rows_are_found_in_every_chunk(
    registry: InstrumentRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(csv_scoring, "CHUNK_ROWS", 4)
    rows = [["id", *Q]]
    for i in range(12):
        rows.append(["", *[""] * 56] if i % 5 == 0 else [f"r{i}", *GOOD])
    source = _write(tmp_path / "in.csv", rows)
    result = score_csv(source, tmp_path / "out.csv", registry, allow_extra_columns=True)
    assert result.blank_rows == (2, 7, 12)
    assert result.rows == 9
    assert len(_read(tmp_path / "out.csv")) == 10


def test_a_row_with_an_id_and_no_answers_is_scored_not_blank(
    registry: InstrumentRegistry, tmp_path: Path
):
    source = _write(tmp_path / "in.csv", [["id", *Q], ["SP-1", *[""] * 56]])
    result = score_csv(source, tmp_path / "out.csv", registry, allow_extra_columns=True)
    assert result.blank_rows == ()
    assert _read(tmp_path / "out.csv")[1] == ["SP-1", *[""] * len(ALL_SCORES)]


def test_many_blank_rows_are_counted_and_the_first_listed(app: Flask, tmp_path: Path):
    rows = [Q, GOOD, *[[""] * 56] * 25]
    source = _write(tmp_path / "in.csv", rows)
    result = _invoke(app, str(source), "-o", str(tmp_path / "out.csv"))
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == (
        "Skipped 25 blank rows (rows 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 and 15 more): "
        "no output rows for them"
    )


# --------------------------------------------------------------------------------------------
# Formula-safe output


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+SUM(A1:A9)", "'+SUM(A1:A9)"),
        ("-2+3", "'-2+3"),
        ("@cmd", "'@cmd"),
        ("\tx", "'\tx"),
        ("\r=x", "'\r=x"),
        ("-", "'-"),
        ("-1.5", "-1.5"),
        ("+3", "+3"),
        ("-2e-3", "-2e-3"),
        ("a=b", "a=b"),
        ("SP-1", "SP-1"),
        ("", ""),
    ],
)
def test_formula_safe(cell: str, written: str):
    assert formula_safe(cell) == written


def test_copied_cells_and_names_that_look_like_formulas_get_a_quote(app: Flask, tmp_path: Path):
    rows = [
        ["study_id", "=HYPERLINK(x)", *Q],
        ["=cmd|' /C calc'!A0", "-1.5", *GOOD],
        ["SP-2", "@SUM(1)", *GOOD],
        ["+46 70", "plain", *GOOD],
    ]
    source = _write(tmp_path / "in.csv", rows, delimiter=";")
    target = tmp_path / "out.csv"
    result = _invoke(app, "--allow-extra-columns", "--keep-answers", str(source), "-o", str(target))
    assert result.exit_code == 0, result.output
    out = _read(target)
    assert out[0][:3] == ["study_id", "'=HYPERLINK(x)", "q1"]
    assert [row[:2] for row in out[1:]] == [
        ["'=cmd|' /C calc'!A0", "-1.5"],
        ["SP-2", "'@SUM(1)"],
        ["'+46 70", "plain"],
    ]
    assert out[1][2:58] == GOOD  # answers and scores are numbers, left as they are
    assert all(not cell.startswith("'") for row in out[1:] for cell in row[2:])


HEADER = "study_id," + ",".join(Q)
ROW = ",".join(GOOD)
#: Files without a quote, which the scoring cuts at the separator in one pass per chunk, each
#: beside what the csv module makes of them: the same output, or the same problems.
PLAIN_FILES = {
    "crlf": f"{HEADER}\r\nSP-1,{ROW}\r\nSP-2,{ROW}\r\n",
    "lf, no final line end": f"{HEADER}\nSP-1,{ROW}\nSP-2,{ROW}",
    "cr only": f"{HEADER}\rSP-1,{ROW}\rSP-2,{ROW}\r",
    "semicolons": f"{HEADER}\nSP-1,{ROW}\n".replace(",", ";"),
    "blank line and empty row": f"{HEADER}\nSP-1,{ROW}\n\n{',' * 56}\nSP-2,{ROW}\n",
    "short and long rows": f"{HEADER}\nSP-1,{ROW}\nSP-2,{ROW[:-2]}\nSP-3,{ROW},9\n",
    "bad cells": f"{HEADER}\nSP-1,{ROW.replace('3', '5', 2)}\nSP-2,{ROW.replace('1', ' 1', 1)}\n",
    "formula-like study id": f"{HEADER}\n=SUM(A1),{ROW}\n-2,{ROW}\n",
    "blank study id": f"{HEADER}\n,{ROW}\nSP-2,{ROW}\n",
    "only the header": f"{HEADER}\n",
    "a NUL in a cell": f"{HEADER}\nSP\x001,{ROW}\n",
    # Longer than the csv module takes a cell: reported as it reports it, with or without
    # another row of the same chunk sent to the csv module (a blank line, a bad cell).
    "a huge cell": f"{HEADER}\n{'x' * 140_000},{ROW}\nSP-2,{ROW}\n",
    "a huge cell and a blank line": f"{HEADER}\n{'x' * 140_000},{ROW}\n\nSP-2,{ROW}\n",
    "a huge cell and a bad cell": f"{HEADER}\n{'x' * 140_000},{ROW}\nSP-2,{ROW[:-1]}9\n",
    # Several chunks: a blank row and a bad cell in the second and third, good rows around.
    "many chunks": f"{HEADER}\n"
    + "".join(
        "\n" if n == 300 else f"SP-{n},{ROW[:-1]}9\n" if n == 600 else f"SP-{n},{ROW}\n"
        for n in range(1, 700)
    ),
    "many chunks, one blank line": f"{HEADER}\n"
    + "".join("\n" if n == 300 else f"SP-{n},{ROW}\n" for n in range(1, 700)),
}


def _outcome(source: Path, target: Path, registry: InstrumentRegistry):
    try:
        result = score_csv(source, target, registry, allow_extra_columns=True, keep_answers=True)
    except CsvScoringError as exc:
        return ("problems", [str(p) for p in exc.problems])
    return ("scored", result.rows, result.blank_rows, target.read_bytes())


@pytest.mark.parametrize("name", list(PLAIN_FILES))
def test_an_unquoted_file_scores_exactly_as_the_csv_module_reads_it(
    registry: InstrumentRegistry, tmp_path: Path, monkeypatch, name
):
    source = tmp_path / "answers.csv"
    source.write_bytes(PLAIN_FILES[name].encode("utf-8"))
    assert not csv_scoring._needs_csv_parser(source)
    fast = _outcome(source, tmp_path / "fast.csv", registry)
    monkeypatch.setattr(csv_scoring, "_needs_csv_parser", lambda path: True)
    parsed = _outcome(source, tmp_path / "parsed.csv", registry)
    assert fast == parsed
    if name == "crlf":
        assert fast[:3] == ("scored", 2, ())
    if name == "blank line and empty row":
        assert fast[:3] == ("scored", 2, (3, 4))  # the header is row 1
    if name == "bad cells":
        assert fast[0] == "problems" and len(fast[1]) == 3
    if name.startswith("a huge cell"):
        assert fast[0] == "problems"
        assert fast[1][0] == "row 2: unreadable CSV: field larger than field limit (131072)"
    if name == "many chunks":
        assert fast[0] == "problems" and len(fast[1]) == 1
        assert fast[1][0].startswith("row 601, column q56: '9' is not a valid answer")
    if name == "many chunks, one blank line":
        assert fast[:3] == ("scored", 698, (301,))


def test_a_file_with_quotes_is_read_with_the_csv_module(
    registry: InstrumentRegistry, tmp_path: Path
):
    source = tmp_path / "answers.csv"
    text = f'{HEADER}\n"SP-1",{ROW}\n"SP, two\nlines",{ROW}\n'  # a quoted separator, line end
    source.write_bytes(text.encode("utf-8"))
    assert csv_scoring._needs_csv_parser(source)
    outcome = _outcome(source, tmp_path / "out.csv", registry)
    assert outcome[:3] == ("scored", 2, ())
    assert b'\r\n"SP, two\nlines",' in outcome[3]
