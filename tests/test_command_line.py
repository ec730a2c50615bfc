"""The real ``pro-service`` console script, as an operator runs it, on a fresh SQLite file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PRO_SERVICE = shutil.which("pro-service", path=str(Path(sys.executable).parent))


def _run(args, env_extra, cwd):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRO_")}
    env.update(env_extra)
    return subprocess.run(  # noqa: S603
        [PRO_SERVICE, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def fresh_instance(tmp_path):
    return {
        "PRO_INSTANCE_DIR": str(tmp_path / "instance"),
        "PRO_PUBLIC_BASE_URL": "http://127.0.0.1:5000",
    }


def test_console_script_is_installed():
    assert PRO_SERVICE is not None


def test_fresh_laptop_upgrade_then_demo(tmp_path, fresh_instance):
    upgraded = _run(["db", "upgrade"], fresh_instance, tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "instance" / "pro_service.sqlite3").is_file()
    demo = _run(["demo"], fresh_instance, tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert "http://127.0.0.1:5000/q/" in demo.stdout


def test_demo_refuses_an_unmigrated_database(tmp_path, fresh_instance):
    demo = _run(["demo"], fresh_instance, tmp_path)
    assert demo.returncode != 0
    assert "pro-service db upgrade" in demo.stderr


def test_production_without_configuration_refuses_and_names_what_is_missing(tmp_path):
    result = _run(["db", "upgrade"], {"PRO_ENV": "production"}, tmp_path)
    assert result.returncode == 2
    for name in (
        "PRO_SECRET_KEY",
        "PRO_DATABASE_URL",
        "PRO_ENCRYPTION_KEY",
        "PRO_TWILIO_AUTH_TOKEN",
    ):
        assert name in result.stderr


def test_a_broken_questionnaire_file_stops_start_up_naming_file_and_field(tmp_path, fresh_instance):
    repo = Path(__file__).resolve().parent.parent
    data = tmp_path / "questionnaires"
    shutil.copytree(repo / "questionnaires", data)
    path = data / "qlq-c30" / "3.0.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace("response_set: four_point", "response_set: five_point", 1), encoding="utf-8"
    )
    result = _run(
        ["db", "upgrade"], {**fresh_instance, "PRO_QUESTIONNAIRE_DIR": str(data)}, tmp_path
    )
    assert result.returncode == 2
    assert "qlq-c30/3.0.yaml" in result.stderr
    assert "response_set" in result.stderr
    assert "five_point" in result.stderr


def test_a_broken_schedule_stops_start_up_naming_the_field(tmp_path, fresh_instance):
    schedule = tmp_path / "schedule.yaml"
    repo = Path(__file__).resolve().parent.parent
    text = (repo / "questionnaires" / "schedules" / "scanpan.yaml").read_text(encoding="utf-8")
    schedule.write_text(text.replace("anchor: surgery", "anchor: operation", 1), encoding="utf-8")
    result = _run(
        ["db", "upgrade"], {**fresh_instance, "PRO_SCHEDULE_FILE": str(schedule)}, tmp_path
    )
    assert result.returncode == 2
    assert "timepoints[1].anchor" in result.stderr
