"""The deployment files in deploy/: systemd units that systemd accepts, an environment template
that covers every setting production requires, and the nginx example the README shows."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from pro_service.crypto import generate_key
from pro_service.settings import ConfigurationError, load_settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
UNITS = ("pro-service-web.service", "pro-service-scheduler.service")
INSTALLED = "/opt/pro-service/venv/bin/"


@pytest.mark.parametrize("unit", UNITS)
def test_the_unit_passes_systemd_analyze_verify_without_a_warning(unit, tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    text = (DEPLOY / unit).read_text()
    # verify checks that each ExecStart program exists: stand-ins where the install puts them.
    stand_ins = tmp_path / "bin"
    stand_ins.mkdir()
    for program in re.findall(rf"^Exec\w+={re.escape(INSTALLED)}(\S+)", text, re.M):
        script = stand_ins / program
        script.write_text("#!/bin/sh\n")
        script.chmod(0o755)
    copy = tmp_path / unit
    copy.write_text(text.replace(INSTALLED, f"{stand_ins}/"))
    checked = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    assert checked.returncode == 0, checked.stderr
    own = [line for line in checked.stderr.splitlines() if unit in line]
    assert own == [], own  # unknown keys and bad values are only warnings: none allowed


@pytest.mark.parametrize("unit", UNITS)
def test_the_unit_is_sandboxed_and_writes_only_its_state_folder(unit):
    settings = dict(
        line.split("=", 1)
        for line in (DEPLOY / unit).read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert settings["NoNewPrivileges"] == "yes"
    assert settings["ProtectSystem"] == "strict"
    assert settings["ProtectHome"] == "yes"
    assert settings["PrivateTmp"] == "yes"
    assert settings["CapabilityBoundingSet"] == ""
    assert settings["ReadWritePaths"] == "/var/lib/pro-service"
    assert settings["User"] == "pro-service"


def test_the_web_unit_serves_the_app_without_an_access_log():
    text = (DEPLOY / "pro-service-web.service").read_text()
    (command,) = re.findall(r"^ExecStart=(.*)$", text, re.M)
    words = shlex.split(command)
    assert words[-1] == "pro_service:create_app()"  # importable from any folder
    assert not any("access-log" in word for word in words)  # /q/ paths are patients' links


def test_the_environment_template_holds_every_setting_production_requires():
    values = {}
    for line in (DEPLOY / "pro-service.env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, value = line.split("=", 1)
            values[key] = value
    assert values["PRO_ENV"] == "production"
    # The placeholders, replaced as the comments say, make a configuration that starts.
    values["PRO_SECRET_KEY"] = "x" * 48
    values["PRO_ENCRYPTION_KEY"] = generate_key()
    settings = load_settings(values)
    assert settings.is_production
    assert settings.public_base_url.startswith("https://")
    # Left out, any one of them stops start-up.
    for key in ("PRO_DATABASE_URL", "PRO_SECRET_KEY", "PRO_ENCRYPTION_KEY", "PRO_TWILIO_FROM"):
        with pytest.raises(ConfigurationError, match=key):
            load_settings({k: v for k, v in values.items() if k != key})


def test_the_nginx_example_is_the_one_the_readme_shows():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"  ```nginx\n(.*?)  ```", readme, re.S)
    assert block
    shown = [line.removeprefix("  ") for line in block.group(1).splitlines()]
    shipped = [
        line
        for line in (DEPLOY / "nginx.conf").read_text().splitlines()
        if not line.startswith("#")
    ]
    assert shipped == shown
