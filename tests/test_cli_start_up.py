"""``pro-service`` starts without the web stack unless it serves pages: ``--help`` builds no app,
``score`` needs no database, and the scheduler and the other commands get no blueprints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import click
import pytest
from flask import Flask

from pro_service import create_app, create_base_app
from pro_service.cli import COMMANDS, app_kind, cli, load_command

#: Runs the real ``pro-service`` group in a fresh interpreter, then reports what was loaded.
PROBE = textwrap.dedent(
    """
    import json, sys
    from flask import current_app
    from pro_service.cli import cli
    seen = {}
    import pro_service
    real = pro_service.create_base_app, pro_service.create_app
    def spy(kind, factory):
        def build(*args, **kwargs):
            app = factory(*args, **kwargs)
            seen["app"] = kind
            seen["blueprints"] = sorted(app.blueprints)
            seen["database"] = "pro_db" in app.extensions
            return app
        return build
    pro_service.create_base_app = spy("base", real[0])
    pro_service.create_app = spy("web", real[1])
    try:
        cli.main(sys.argv[1:], prog_name="pro-service", standalone_mode=False)
    finally:
        seen["modules"] = sorted(
            m for m in ("pro_service.web", "pro_service.web.patient", "pro_service.web.staff",
                        "pro_service.i18n", "sqlalchemy", "matplotlib")
            if m in sys.modules
        )
        print("\\n" + json.dumps(seen))
    """
)


def _run(
    script: str, tmp_path: Path, *args: str, **env_extra: str
) -> tuple[Any, subprocess.CompletedProcess]:
    """``script`` in a fresh interpreter with ``args``; the JSON of its last output line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRO_")}
    env.update({"PRO_INSTANCE_DIR": str(tmp_path / "instance"), **env_extra})
    done = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", script, *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return json.loads(done.stdout.strip().splitlines()[-1]), done


def _probe(tmp_path: Path, *args: str) -> tuple[dict, subprocess.CompletedProcess]:
    seen, done = _run(PROBE, tmp_path, *args)
    assert done.returncode == 0, done.stderr
    return seen, done


def test_help_lists_every_command_without_building_an_app_or_importing_commands(tmp_path):
    seen, done = _probe(tmp_path, "--help")
    assert "app" not in seen
    assert seen["modules"] == []
    for name in COMMANDS:
        assert f"  {name} " in done.stdout
    assert "Score QLQ-C30 / QLQ-PAN26 answers in INPUT.csv." in done.stdout


#: Runs the console script's ``main`` in a fresh interpreter, then reports the heavy modules
#: it imported (printed at exit, as ``main`` ends with ``sys.exit``).
PROBE_MAIN = textwrap.dedent(
    """
    import atexit, json, sys
    def report():
        heavy = ("flask", "sqlalchemy", "jinja2", "pro_service.web", "apscheduler", "cryptography")
        print("\\n" + json.dumps([m for m in heavy if m in sys.modules]))
    atexit.register(report)
    from pro_service.cli import main
    sys.argv = ["pro-service", *sys.argv[1:]]
    main()
    """
)


def _answers(tmp_path: Path) -> Path:
    source = tmp_path / "answers.csv"
    source.write_text(
        ",".join(f"q{n}" for n in range(1, 31)) + "\n" + ",".join(["1"] * 30) + "\n",
        encoding="utf-8",
    )
    return source


def _main(
    tmp_path: Path, *args: str, **env_extra: str
) -> tuple[list[str], subprocess.CompletedProcess]:
    return _run(PROBE_MAIN, tmp_path, *args, **env_extra)


def test_the_score_command_imports_neither_flask_nor_the_database(tmp_path):
    """``pro-service score`` is a command a user waits for: it builds no app at all."""
    source = _answers(tmp_path)
    imported, done = _main(tmp_path, "score", str(source), "-o", str(tmp_path / "scores.csv"))
    assert done.returncode == 0, done.stderr
    assert "Scored 1 row (qlq-c30 3.0;" in done.stderr
    assert imported == []
    assert (tmp_path / "scores.csv").read_text(encoding="utf-8").startswith("QL2,PF2,")
    assert not (tmp_path / "instance").exists()  # nothing made on disk but the output

    imported, done = _main(tmp_path, "score", "--help")
    assert done.returncode == 0
    assert "Usage: pro-service score [OPTIONS] INPUT.csv" in done.stdout
    assert imported == []


def test_the_score_command_checks_unchanged_instrument_files_against_the_schema_once(tmp_path):
    """With an instance folder (an installed service has one), the files that passed their
    schema check are remembered there: the next run does not import jsonschema."""
    probe = PROBE_MAIN.replace('"cryptography")', '"cryptography", "jsonschema")')
    source = _answers(tmp_path)
    (tmp_path / "instance").mkdir()
    outputs = []
    for run in range(2):
        target = tmp_path / f"scores{run}.csv"
        imported, done = _run(probe, tmp_path, "score", str(source), "-o", str(target))
        assert done.returncode == 0, done.stderr
        assert imported == (["jsonschema"] if run == 0 else [])
        outputs.append(target.read_bytes())
    assert outputs[0] == outputs[1]
    assert len(list((tmp_path / "instance" / "cache" / "schema-passes").iterdir())) == 2


def test_the_score_command_stops_at_a_bad_setting_or_data_file_naming_it(tmp_path):
    source = _answers(tmp_path)
    _, done = _main(
        tmp_path, "score", str(source), "-o", str(tmp_path / "scores.csv"), PRO_ENV="staging"
    )
    assert done.returncode == 2
    assert "Configuration error: PRO_ENV must be one of development, test, production" in (
        done.stderr
    )
    folder = tmp_path / "questionnaires"
    (folder / "qlq-c30").mkdir(parents=True)
    broken = folder / "qlq-c30" / "3.0.yaml"
    broken.write_text("id: [unclosed\n", encoding="utf-8")
    _, done = _main(
        tmp_path,
        "score",
        str(source),
        "-o",
        str(tmp_path / "scores.csv"),
        PRO_QUESTIONNAIRE_DIR=str(folder),
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"Cannot start: {broken}: invalid YAML: line 2")
    assert not (tmp_path / "scores.csv").exists()


def test_the_other_commands_still_run_through_the_console_script(tmp_path):
    imported, done = _main(tmp_path, "jobs", "list")
    assert done.returncode == 0, done.stderr
    assert "dispatch" in done.stdout
    assert "flask" in imported


def test_score_through_the_command_group_runs_without_database_or_web_pages(tmp_path):
    source = tmp_path / "answers.csv"
    source.write_text(
        ",".join(f"q{n}" for n in range(1, 31)) + "\n" + ",".join(["1"] * 30) + "\n",
        encoding="utf-8",
    )
    seen, done = _probe(tmp_path, "score", str(source), "-o", str(tmp_path / "scores.csv"))
    assert "Scored 1 row (qlq-c30 3.0;" in done.stderr
    assert seen["app"] == "base"
    assert seen["blueprints"] == []
    assert seen["database"] is False
    assert seen["modules"] == []  # not even SQLAlchemy
    assert (tmp_path / "scores.csv").read_text(encoding="utf-8").startswith("QL2,PF2,")


def test_database_commands_and_jobs_get_the_database_but_no_web_pages(tmp_path):
    seen, _ = _probe(tmp_path, "db", "upgrade")
    assert (seen["app"], seen["blueprints"], seen["database"]) == ("base", [], True)
    seen, done = _probe(tmp_path, "jobs", "run", "all")
    assert (seen["app"], seen["blueprints"], seen["database"]) == ("base", [], True)
    assert "pro_service.web" not in seen["modules"]
    assert "dispatch:" in done.stdout


def test_routes_gets_the_web_app(tmp_path):
    seen, done = _probe(tmp_path, "routes")
    assert seen["app"] == "web"
    assert "staff" in seen["blueprints"]
    assert "/healthz" in done.stdout


@pytest.mark.parametrize(
    ("command", "kind"),
    [
        ("score", "files"),
        ("export", "base"),
        ("rescore", "base"),
        ("jobs", "base"),
        ("scheduler", "base"),
        ("db", "base"),
        ("import-patients", "base"),
        ("demo", "base"),
        ("create-user", "base"),
        ("dev", "web"),
        ("run", "web"),
        ("routes", "web"),
        ("shell", "web"),
        (None, "web"),
    ],
)
def test_each_command_gets_the_smallest_app_it_needs(command, kind):
    assert app_kind(command) == kind


def test_the_listed_summaries_are_the_commands_own(tmp_path):
    app = create_app(
        {
            "env": "test",
            "database_url": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
            "instance_dir": tmp_path / "instance",
        }
    )
    assert set(app.cli.commands) == set(COMMANDS)
    for name, entry in COMMANDS.items():
        command = load_command(name)
        assert command.name == name
        assert app.cli.commands[name] is command
        assert entry.summary == command.get_short_help_str(limit=1000)
    context = click.Context(cli)
    assert cli.list_commands(context) == sorted({*COMMANDS, "run", "shell", "routes"})


def test_the_base_app_has_no_pages(tmp_path):
    overrides = {
        "env": "test",
        "database_url": f"sqlite:///{tmp_path / 'unused.sqlite3'}",
        "instance_dir": tmp_path / "instance",
    }
    base: Flask = create_base_app(overrides)
    assert base.blueprints == {}
    assert "pro_db" in base.extensions
    assert {"instruments", "schedule", "message_texts", "vault"} <= set(base.extensions)
    files_only = create_base_app(overrides, database=False)
    assert "pro_db" not in files_only.extensions
    assert files_only.extensions["instruments"].latest()
    assert create_app(overrides).blueprints
