"""``pro-service score INPUT.csv -o OUTPUT.csv``: score a file of EORTC answers.

The scoring itself is :func:`pro_service.file_scoring.score_csv`; this is the operator's wrapper:
file checks with plain messages, every problem of a bad file on stderr, a progress bar for big
files on a terminal, and a one-line summary.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import NoReturn

import click

from ..file_scoring import CsvScoringError, score_csv
from ..instruments import (
    ALGORITHM_VERSION,
    InstrumentFileError,
    InstrumentRegistry,
    SchemaPasses,
    load_instruments,
)
from ..settings import ConfigurationError, load_settings
from . import cannot_start

#: Files with more data rows than this get a progress bar (when stderr is a terminal).
PROGRESS_MIN_ROWS = 10_000
#: Blank rows listed by number in the summary (the count is always given).
BLANK_ROWS_SHOWN = 10


def _count_lines(path: Path) -> int:
    """Line ends in ``path``: a cheap upper bound on its rows (~10 ms for 100,000 rows)."""
    count = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            count += block.count(b"\n")
    return count


def _stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


def _fail(message: str) -> NoReturn:
    raise click.ClickException(message)


def _blank_rows_note(rows: tuple[int, ...]) -> str:
    shown = ", ".join(map(str, rows[:BLANK_ROWS_SHOWN]))
    more = f" and {len(rows) - BLANK_ROWS_SHOWN} more" if len(rows) > BLANK_ROWS_SHOWN else ""
    if len(rows) == 1:
        return f"Skipped 1 blank row (row {shown}): no output row for it"
    return f"Skipped {len(rows)} blank rows (rows {shown}{more}): no output rows for them"


def _instruments() -> InstrumentRegistry:
    """The instruments to score with: the app's when the command runs in an app's command group
    (``app.cli``, the tests), else those of the settings' folders (PRO_QUESTIONNAIRE_DIR,
    PRO_INSTRUMENT_TEXT_DIR), loaded and checked here: the console script builds no app for
    ``score`` and never imports Flask (without Flask imported there is no app to ask). Files
    that passed their schema check in an earlier run, byte for byte, are not checked against
    the schema again (SchemaPasses, in the instance folder when there is one)."""
    if "flask" in sys.modules:
        from flask.cli import ScriptInfo

        info = click.get_current_context().find_object(ScriptInfo)
        if info is not None:
            registry: InstrumentRegistry = info.load_app().extensions["instruments"]
            return registry
    try:
        settings = load_settings()
        instance = settings.instance_dir
        return load_instruments(
            settings.questionnaire_dir,
            settings.instrument_text_dir,
            # kept in the service's instance folder; none is made just for this
            passes=SchemaPasses(instance / "cache" / "schema-passes")
            if instance.is_dir()
            else None,
        )
    except (ConfigurationError, InstrumentFileError) as exc:
        cannot_start(exc)


def _check_paths(source: Path, target: Path) -> None:
    if not source.exists():
        _fail(f"{source}: no such file")
    if not source.is_file():
        _fail(f"{source}: not a file")
    if not os.access(source, os.R_OK):
        _fail(f"{source}: not readable (permission denied)")
    folder = target.parent
    if not folder.is_dir():
        _fail(f"{target}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        _fail(f"{target}: cannot write in the folder {folder} (permission denied)")
    if target.is_dir():
        _fail(f"{target}: is a folder; give a file name")
    if target.exists() and target.resolve() == source.resolve():
        _fail(f"{target}: the output must be a different file from the input")


@click.command("score")
@click.argument("input_path", metavar="INPUT.csv", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    "output_path",
    required=True,
    metavar="OUTPUT.csv",
    type=click.Path(path_type=Path),
    help="Where to write the scores (replaced only when the whole file scores).",
)
@click.option(
    "--keep-answers",
    is_flag=True,
    help="Also copy the answer columns q1..q56 to the output.",
)
@click.option(
    "--allow-extra-columns",
    is_flag=True,
    help="Copy columns other than q1..q56 (such as study_id) through to the output.",
)
def score_command(
    input_path: Path, output_path: Path, keep_answers: bool, allow_extra_columns: bool
) -> None:
    """Score QLQ-C30 / QLQ-PAN26 answers in INPUT.csv.

    INPUT.csv has one row per questionnaire and the answer columns q1..q30 (QLQ-C30) and/or
    q31..q56 (QLQ-PAN26); an empty cell is an unanswered item. Columns may be separated by
    commas or semicolons. Other columns are refused unless --allow-extra-columns is given,
    which copies them through. The output has those columns, then one column per score
    (unrounded; empty when the scoring rules leave it missing). If any cell or column name is
    wrong, every problem is listed and no output is written. Rows with every cell empty are
    skipped and reported.
    """
    registry = _instruments()
    _check_paths(input_path, output_path)

    total = _count_lines(input_path) - 1 if _stderr_is_terminal() else 0
    score = functools.partial(
        score_csv, keep_answers=keep_answers, allow_extra_columns=allow_extra_columns
    )
    try:
        if total > PROGRESS_MIN_ROWS:
            with click.progressbar(length=total, label="Scoring", file=sys.stderr) as bar:
                done = 0

                def advance(rows: int) -> None:
                    nonlocal done
                    bar.update(rows - done)
                    done = rows

                result = score(input_path, output_path, registry, advance)
        else:
            result = score(input_path, output_path, registry)
    except CsvScoringError as exc:
        count = len(exc.problems)
        click.echo(
            f"{input_path}: {count} problem{'s' if count != 1 else ''}; "
            f"nothing was written to {output_path}",
            err=True,
        )
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(1)
    except UnicodeDecodeError:
        _fail(f"{input_path}: not UTF-8 text (save it as CSV UTF-8)")
    except OSError as exc:
        _fail(f"cannot score {input_path} into {output_path}: {exc.strerror or exc}")

    if result.blank_rows:
        click.echo(_blank_rows_note(result.blank_rows), err=True)
    instruments = ", ".join(f"{i.id} {i.version}" for i in result.instruments)
    click.echo(
        f"Scored {result.rows} row{'s' if result.rows != 1 else ''} ({instruments}; "
        f"algorithm {ALGORITHM_VERSION}) into {output_path}",
        err=True,
    )
