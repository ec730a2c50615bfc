"""``pro-service score``, end to end through the Flask CLI runner."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from flask import Flask

import pro_service.cli.score as score_module
from pro_service import create_app
from pro_service.cli.score import score_command
from pro_service.file_scoring import score_csv

from .conftest import ALL_SCORES

Q = [f"q{n}" for n in range(1, 57)]
GOOD = ["2", "3", "2", "2", "1", "3", "2", "2", "3", "3"] * 5 + ["1", "2", "3", "4", "1", "2"]


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    application = create_app(
        {
            "env": "test",
            "database_url": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
            "instance_dir": tmp_path / "instance",
            "public_base_url": "https://pro.example.test",
            "TESTING": True,
        }
    )
    return application


def _write(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def _invoke(app: Flask, *args: str):
    return app.test_cli_runner().invoke(args=["score", *args])


def test_score_command_is_registered_by_the_app_factory(tmp_path: Path):
    application = create_app(
        {
            "env": "test",
            "database_url": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
            "instance_dir": tmp_path / "instance",
            "TESTING": True,
        }
    )
    assert application.cli.commands["score"] is score_command


def test_score_writes_the_scores_and_a_summary_line(app: Flask, tmp_path: Path):
    source = _write(tmp_path / "answers.csv", [["study_id", *Q], ["SP-1", *GOOD], ["SP-2", *GOOD]])
    target = tmp_path / "scores.csv"
    result = _invoke(app, "--allow-extra-columns", str(source), "-o", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr == (
        "Scored 2 rows (qlq-c30 3.0, qlq-pan26 1.0; algorithm eortc-manual-3rd-ed/1) "
        f"into {target}\n"
    )
    with target.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["study_id", *ALL_SCORES]
    score_csv(
        source, tmp_path / "direct.csv", app.extensions["instruments"], allow_extra_columns=True
    )
    assert target.read_bytes() == (tmp_path / "direct.csv").read_bytes()


def test_score_lists_every_problem_and_writes_nothing(app: Flask, tmp_path: Path):
    bad_q3 = list(GOOD)
    bad_q3[2] = "5"
    bad_two = list(GOOD)
    bad_two[11], bad_two[29] = "2.5", "x"
    rows = [["id", *Q], ["a", *GOOD], ["b", *GOOD], ["c", *GOOD], ["d", *GOOD], ["e", *GOOD]]
    rows += [["f", *bad_q3], ["g", *GOOD], ["h", *bad_two]]
    source = _write(tmp_path / "answers.csv", rows)
    target = tmp_path / "scores.csv"
    result = _invoke(app, "--allow-extra-columns", str(source), "-o", str(target))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{source}: 3 problems; nothing was written to {target}",
        "row 7, column q3: '5' is not a valid answer (allowed 1-4)",
        "row 9, column q12: '2.5' is not a valid answer (allowed 1-4)",
        "row 9, column q30: 'x' is not a valid answer (allowed 1-7)",
    ]
    assert not target.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".scores", "scores"))]


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        pytest.param(
            lambda d: [str(d / "missing.csv"), "-o", str(d / "out.csv")],
            "missing.csv: no such file",
            id="missing-input",
        ),
        pytest.param(
            lambda d: [str(d), "-o", str(d / "out.csv")], "not a file", id="input-is-a-folder"
        ),
        pytest.param(
            lambda d: [str(d / "answers.csv"), "-o", str(d / "nowhere" / "out.csv")],
            "the folder",
            id="missing-output-folder",
        ),
        pytest.param(
            lambda d: [str(d / "answers.csv"), "-o", str(d / "answers.csv")],
            "the output must be a different file from the input",
            id="same-file",
        ),
        pytest.param(
            lambda d: [str(d / "answers.csv"), "-o", str(d)], "is a folder", id="output-is-a-folder"
        ),
    ],
)
def test_score_refuses_bad_paths_with_a_clear_message(
    app: Flask, tmp_path: Path, make_args, message: str
):
    source = _write(tmp_path / "answers.csv", [["id", *Q], ["a", *GOOD]])
    before = source.read_bytes()
    result = _invoke(app, *make_args(tmp_path))
    assert result.exit_code != 0
    assert message in result.stderr
    assert source.read_bytes() == before


def test_score_requires_an_output_option(app: Flask, tmp_path: Path):
    source = _write(tmp_path / "answers.csv", [["id", *Q], ["a", *GOOD]])
    result = _invoke(app, str(source))
    assert result.exit_code == 2
    assert "Missing option '-o' / '--output'" in result.stderr


def test_no_progress_bar_when_stderr_is_not_a_terminal(app: Flask, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(score_module, "PROGRESS_MIN_ROWS", 0)
    source = _write(tmp_path / "answers.csv", [["id", *Q], ["a", *GOOD]])
    result = _invoke(app, "--allow-extra-columns", str(source), "-o", str(tmp_path / "out.csv"))
    assert result.exit_code == 0
    assert "Scoring" not in result.stderr


def test_progress_bar_on_a_terminal_for_a_large_file(app: Flask, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(score_module, "_stderr_is_terminal", lambda: True)
    monkeypatch.setattr(score_module, "PROGRESS_MIN_ROWS", 3)
    rows = [["id", *Q]] + [[str(i), *GOOD] for i in range(5)]
    source = _write(tmp_path / "answers.csv", rows)
    result = _invoke(app, "--allow-extra-columns", str(source), "-o", str(tmp_path / "out.csv"))
    assert result.exit_code == 0, result.output
    assert "Scoring" in result.stderr
    assert result.stderr.rstrip().endswith(f"into {tmp_path / 'out.csv'}")


def test_small_files_get_no_progress_bar_even_on_a_terminal(
    app: Flask, tmp_path: Path, monkeypatch
):
    monkeypatch.setattr(score_module, "_stderr_is_terminal", lambda: True)
    source = _write(tmp_path / "answers.csv", [["id", *Q], ["a", *GOOD]])
    result = _invoke(app, "--allow-extra-columns", str(source), "-o", str(tmp_path / "out.csv"))
    assert result.exit_code == 0
    assert "Scoring" not in result.stderr


def test_count_lines_counts_line_ends(tmp_path: Path):
    path = tmp_path / "f.csv"
    path.write_bytes(b"a\nb\r\nc")
    assert score_module._count_lines(path) == 2
