"""`pro-service check`: every line OK on a ready installation, and each FAIL line with its fix
and a non-zero exit."""

from __future__ import annotations

import shutil
from datetime import date

import pytest
from click.testing import CliRunner

from pro_service import create_app
from pro_service.audit import Actor
from pro_service.cli import check as check_module
from pro_service.cli.check import check_command
from pro_service.crypto import generate_key
from pro_service.extensions import db
from pro_service.scheduler.jobs import run_job
from pro_service.settings import PROJECT_ROOT

from builders import build_patient, build_site


@pytest.fixture
def ready(tmp_path) -> dict[str, str]:
    """A development installation in tmp_path: migrated, a patient with a phone number, and a
    scheduler pass just run."""
    env = {"PRO_INSTANCE_DIR": str(tmp_path / "instance"), "PRO_ENV": "development"}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        app = create_app()
        assert app.test_cli_runner().invoke(args=["db", "upgrade"]).exit_code == 0
        with app.app_context():
            site = build_site(db.session, now=_now(), code="SE-CHK")
            build_patient(
                app,
                db.session,
                now=_now(),
                actor=Actor.operator(),
                site=site,
                study_id="CHK-1",
                phone="070-174 06 33",
                language="sv",
                inclusion_date=date.today(),
            )
            db.session.commit()
        run_job(app, "windows")
        app.extensions["pro_db"]["engine"].dispose()
    return env


def _now():  # type: ignore[no-untyped-def]
    from pro_service.clock import utcnow

    return utcnow()


def _check(env: dict[str, str]):  # type: ignore[no-untyped-def]
    clean = {k: None for k in __import__("os").environ if k.startswith("PRO_")}
    return CliRunner().invoke(check_command, env={**clean, **env})


def _line(output: str, name: str) -> str:
    (line,) = [x for x in output.splitlines() if x[6:].startswith(f"{name} ")]
    return line


def test_a_ready_installation_passes_every_check(ready):
    result = _check(ready)
    assert result.exit_code == 0, result.output
    for name in (
        "settings",
        "public URL",
        "catalog sv",
        "catalog fi",
        "catalog en",
        "study files",
        "item text",
        "database",
        "encryption key",
        "scheduler",
    ):
        assert _line(result.output, name).startswith("OK"), result.output
    assert "Ready." in result.output


def test_incomplete_production_settings_fail_naming_what_is_missing(ready):
    result = _check({**ready, "PRO_ENV": "production"})
    assert result.exit_code == 1
    line = _line(result.output, "settings")
    assert line.startswith("FAIL") and "PRO_SECRET_KEY" in line
    assert "1 check(s) failed" in result.output


def test_plain_http_in_production_fails(ready, tmp_path):
    production = {
        **ready,
        "PRO_ENV": "production",
        "PRO_SECRET_KEY": "s" * 48,
        "PRO_DATABASE_URL": f"sqlite:///{tmp_path / 'instance' / 'pro_service.sqlite3'}",
        "PRO_ENCRYPTION_KEY": generate_key(),
        "PRO_PUBLIC_BASE_URL": "http://pro.example.org",
        "PRO_TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "PRO_TWILIO_AUTH_TOKEN": "t" * 32,
        "PRO_TWILIO_FROM": "ScanPan",
    }
    result = _check(production)
    assert _line(result.output, "public URL").startswith("FAIL")
    assert "fix: set PRO_PUBLIC_BASE_URL to the https:// address" in result.output
    # a key that is not the one the numbers were encrypted with
    assert _line(result.output, "encryption key").startswith("FAIL")
    assert "does not open the stored phone numbers" in result.output
    assert result.exit_code == 1


def test_an_old_database_and_a_silent_scheduler_fail(ready, tmp_path):
    empty = {**ready, "PRO_INSTANCE_DIR": str(tmp_path / "other")}
    result = _check(empty)
    assert _line(result.output, "database").startswith("FAIL")
    assert "fix: run `pro-service db upgrade`" in result.output

    (tmp_path / "other").mkdir(exist_ok=True)
    app = create_app(
        {
            "instance_dir": tmp_path / "other",
            "database_url": f"sqlite:///{tmp_path / 'other' / 'pro_service.sqlite3'}",
            "env": "development",
        }
    )
    assert app.test_cli_runner().invoke(args=["db", "upgrade"]).exit_code == 0
    app.extensions["pro_db"]["engine"].dispose()
    silent = _check(empty)
    line = _line(silent.output, "scheduler")
    assert line.startswith("FAIL") and "(never)" in line
    assert "systemctl start pro-service-scheduler" in silent.output
    assert silent.exit_code == 1


def test_a_broken_study_file_and_a_missing_catalog_fail(ready, tmp_path, monkeypatch):
    folder = tmp_path / "questionnaires"
    shutil.copytree(PROJECT_ROOT / "questionnaires", folder)
    (folder / "messages.yaml").write_text("invitation: [not, a, text]\n")
    catalogs = tmp_path / "translations"
    shutil.copytree(PROJECT_ROOT / "translations", catalogs)
    (catalogs / "fi" / "LC_MESSAGES" / "messages.mo").unlink()
    monkeypatch.setattr(check_module, "TRANSLATIONS_DIR", catalogs)
    result = _check({**ready, "PRO_QUESTIONNAIRE_DIR": str(folder)})
    assert _line(result.output, "study files").startswith("FAIL")
    assert "messages.yaml" in _line(result.output, "study files")
    assert _line(result.output, "catalog fi").startswith("FAIL")
    assert _line(result.output, "catalog sv").startswith("OK")
    assert result.exit_code == 1
