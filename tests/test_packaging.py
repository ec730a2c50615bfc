"""The package as a hospital's IT builds and installs it: a wheel, installed into a fresh
virtualenv, run from an empty folder, with no source checkout in sight."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import sysconfig
import uuid
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, str]:
    """(the wheel, what building it printed), built from a clean copy of the sources (an
    in-tree build folder could hold files of an earlier build)."""
    out = tmp_path_factory.mktemp("wheel")
    source = tmp_path_factory.mktemp("source") / "pro-service"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "instance", "build", "dist", "*.egg-info", "__pycache__", ".*cache"
        ),
    )
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = built.stdout + built.stderr
    assert built.returncode == 0, output[-3000:]
    (wheel,) = out.glob("pro_service-*.whl")
    return wheel, output


def test_building_the_wheel_gives_no_deprecation_warning_and_states_the_licence(built):
    wheel, output = built
    assert "deprecated" not in output.lower(), [
        line for line in output.splitlines() if "deprecat" in line.lower()
    ]
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        headers = archive.read(metadata).decode().split("\n\n", 1)[0].splitlines()
    assert "License-Expression: AGPL-3.0-or-later" in headers


def test_the_wheel_carries_the_study_data_and_compiled_catalogs(built):
    wheel, _ = built
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for name in (
        "pro_service/_data/questionnaires/qlq-c30/3.0.yaml",
        "pro_service/_data/questionnaires/qlq-pan26/1.0.yaml",
        "pro_service/_data/questionnaires/schedules/scanpan.yaml",
        "pro_service/_data/questionnaires/messages.yaml",
        "pro_service/_data/questionnaires/missing-reasons.yaml",
        "pro_service/_data/translations/sv/LC_MESSAGES/messages.mo",
        "pro_service/_data/translations/fi/LC_MESSAGES/messages.mo",
        "pro_service/_data/translations/en/LC_MESSAGES/messages.mo",
    ):
        assert name in names, name


PAGE = """
import sys
from pro_service import create_app
import pro_service
app = create_app()
print("package:", pro_service.__file__)
link = sys.argv[1]
page = app.test_client().get(link + "?lang=sv")
print("status:", page.status_code)
print(page.get_data(as_text=True))
"""


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory) -> Path:
    """A fresh virtualenv with the wheel installed (``pip install --no-deps`` of the wheel)."""
    wheel, _ = built
    venv = tmp_path_factory.mktemp("installed") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    # The dependencies come from this environment (no network needed): its site-packages
    # folder on the new one's path, behind the new one's own.
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
        timeout=300,
    )
    return venv


def test_an_installed_wheel_runs_from_an_empty_folder(installed, tmp_path):
    """The README's production recipe without its PostgreSQL: `pip install` the wheel into a
    fresh virtualenv, then `db upgrade`, `demo` and a Swedish page from an empty folder."""
    venv = installed
    python = venv / "bin" / "python"
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRO_")}
    env["PRO_PUBLIC_BASE_URL"] = "https://pro.example.test"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(venv / "bin" / "pro-service"), *args],
            cwd=empty,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    run("db", "upgrade")
    assert (empty / "instance" / "pro_service.sqlite3").is_file()
    demo = run("demo")
    link = re.search(r"https://pro\.example\.test(/q/\S+)", demo.stdout)
    assert link, demo.stdout
    page = subprocess.run(
        [str(python), "-c", PAGE, link.group(1)],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert page.returncode == 0, page.stderr
    assert f"package: {venv}" in page.stdout  # the installed copy, not this checkout
    assert "status: 200" in page.stdout
    assert '<html lang="sv">' in page.stdout
    assert "Hälsoenkät" in page.stdout, page.stdout[:2000]  # the compiled Swedish catalog


def test_the_readme_production_recipe_on_postgresql(installed, tmp_path):
    """README's production section, step by step, with the installed wheel from an empty
    folder: production settings, a new PostgreSQL database, `db upgrade`, a scheduler pass
    (`jobs run all`, as the scheduler process runs it) and `check`, which must say OK to all."""
    from conftest import POSTGRES_ADMIN_URL, REQUIRE_POSTGRES, _postgres_available

    problem = _postgres_available()
    if problem:
        if REQUIRE_POSTGRES:
            pytest.fail(f"PRO_TEST_REQUIRE_POSTGRES=1 but {problem}")
        pytest.skip(problem)
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"pro_recipe_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    empty = tmp_path / "server"
    empty.mkdir()
    bin_dir = installed / "bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRO_")}

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(bin_dir / "pro-service"), *args],
            cwd=empty,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if ok:
            assert done.returncode == 0, done.stdout + done.stderr
        return done

    try:
        key = run("generate-key").stdout.strip()
        env.update(
            {
                "PRO_ENV": "production",
                "PRO_DATABASE_URL": url,
                "PRO_SECRET_KEY": secrets.token_urlsafe(48),
                "PRO_ENCRYPTION_KEY": key,
                "PRO_PUBLIC_BASE_URL": "https://pro.example.org",
                "PRO_TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
                "PRO_TWILIO_AUTH_TOKEN": secrets.token_hex(16),
                "PRO_TWILIO_FROM": "ScanPan",
            }
        )
        before = run("check", ok=False)
        assert before.returncode == 1  # nothing migrated, no scheduler yet: named FAIL lines
        assert "FAIL" in before.stdout and "db upgrade" in before.stdout, before.stdout
        run("db", "upgrade")
        run(
            "create-site",
            "--code",
            "SE-UPP",
            "--name",
            "Uppsala",
            "--country",
            "SE",
            "--time-zone",
            "Europe/Stockholm",
            "--language",
            "sv",
        )
        run("jobs", "run", "all")
        after = run("check")
        *checks, verdict = [line for line in after.stdout.splitlines() if line.strip()]
        assert verdict == "Ready.", after.stdout
        assert len(checks) >= 9 and all(line.startswith("OK") for line in checks), after.stdout
        assert any("scheduler" in line for line in checks), after.stdout
    finally:
        with admin.connect() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()
