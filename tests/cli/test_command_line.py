"""The real ``pro-service`` console script, as an operator runs it, on a fresh SQLite file."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
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
    repo = Path(__file__).resolve().parents[2]
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
    repo = Path(__file__).resolve().parents[2]
    text = (repo / "questionnaires" / "schedules" / "scanpan.yaml").read_text(encoding="utf-8")
    # The first time point anchored on surgery ("before surgery", the second in the file).
    schedule.write_text(
        text.replace("    anchor: surgery\n", "    anchor: operation\n", 1), encoding="utf-8"
    )
    result = _run(
        ["db", "upgrade"], {**fresh_instance, "PRO_SCHEDULE_FILE": str(schedule)}, tmp_path
    )
    assert result.returncode == 2
    assert "timepoints[1].anchor" in result.stderr


@pytest.mark.parametrize(
    ("stop_with", "started_in_background"),
    [("SIGINT", False), ("SIGINT", True), ("SIGTERM", False), ("SIGTERM", True)],
)
def test_dev_serves_the_web_app_and_runs_the_scheduler_process_until_stopped(
    tmp_path, fresh_instance, stop_with, started_in_background
):
    """Stopped with Ctrl-C or kill, also when started in the background (as a CI runner or
    ``nohup`` does: SIGINT inherited as ignored), and leaves no process behind."""
    import signal
    import socket
    import threading
    import time
    import urllib.request

    assert _run(["db", "upgrade"], fresh_instance, tmp_path).returncode == 0
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRO_")}
    env.update(fresh_instance)

    def in_background() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    process = subprocess.Popen(  # noqa: S603
        [PRO_SERVICE, "dev", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=in_background if started_in_background else None,  # noqa: PLW1509
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        body = None
        while time.monotonic() < deadline and body is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                    body = resp.read()
            except OSError:
                time.sleep(0.2)
        assert body == b'{"status":"ok"}\n'
        while time.monotonic() < deadline and not any("job windows:" in x for x in lines):
            time.sleep(0.2)
        import re

        scheduler_pid = int(re.search(r"Scheduler process pid (\d+)", "".join(lines)).group(1))
    finally:
        process.send_signal(getattr(signal, stop_with))
        try:
            process.wait(timeout=30)
        finally:
            if process.poll() is None:  # the test fails below; leave nothing running
                process.kill()
                process.wait()
        reader.join(timeout=10)
        process.stdout.close()
    assert process.returncode is not None
    assert any("job windows: opened 0, expired 0" in x for x in lines)
    # Stopping dev stops its scheduler process too.
    with pytest.raises(ProcessLookupError):
        for _ in range(50):
            os.kill(scheduler_pid, 0)
            time.sleep(0.2)


def test_make_run_serves_on_the_port_the_readme_names(tmp_path):
    """`make run PORT=5051`: the demo's links and the server use that port (dry run)."""
    root = Path(__file__).resolve().parents[2]
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert "make run PORT=" in readme
    planned = subprocess.run(
        ["make", "-n", "run", "PORT=5051"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "pro-service dev --port 5051" in planned
    assert "http://127.0.0.1:5051} .venv/bin/pro-service demo" in planned


def _start_scheduler(env_extra, cwd):
    """The real scheduler process, once it says it runs; its stderr lines are collected by a
    thread (``process.lines``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRO_")}
    env.update(env_extra)
    process = subprocess.Popen(  # noqa: S603
        [PRO_SERVICE, "scheduler"],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    process.lines = lines  # type: ignore[attr-defined]
    process.reader = threading.Thread(  # type: ignore[attr-defined]
        target=lambda: [lines.put(line) for line in process.stderr], daemon=True
    )
    process.reader.start()  # type: ignore[attr-defined]
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the line comes once the priority is set, jobs added
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            if process.poll() is not None:
                break
            continue
        seen.append(line)
        if line.startswith("Scheduler running jobs"):
            return process
    process.kill()
    process.wait()
    process.stderr.close()
    pytest.fail("the scheduler did not start:\n" + "".join(seen))


def _stop(process):
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    process.reader.join(timeout=10)
    process.stderr.close()
    rest = []
    while not process.lines.empty():
        rest.append(process.lines.get())
    assert process.returncode == 0, "".join(rest)


@pytest.mark.parametrize(("setting", "lowered_by"), [(None, 10), ("15", 15), ("0", 0)])
def test_the_scheduler_process_gives_the_web_workers_the_cpu_first(
    tmp_path, fresh_instance, setting, lowered_by
):
    """On a server shared with the web workers, the scheduler runs at a lower CPU priority
    (PRO_SCHEDULER_NICENESS, 10 unless set), so patient pages stay fast during a blast."""
    assert _run(["db", "upgrade"], fresh_instance, tmp_path).returncode == 0
    extra = {} if setting is None else {"PRO_SCHEDULER_NICENESS": setting}
    process = _start_scheduler({**fresh_instance, **extra}, tmp_path)
    try:
        niceness = os.getpriority(os.PRIO_PROCESS, process.pid)
    finally:
        _stop(process)
    assert niceness == min(os.nice(0) + lowered_by, 19)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("20", "PRO_SCHEDULER_NICENESS must be at most 19 (the lowest CPU priority), not 20"),
        ("-5", "PRO_SCHEDULER_NICENESS must be a whole number of steps (0 or more), not '-5'"),
        ("low", "PRO_SCHEDULER_NICENESS must be a whole number of steps (0 or more), not 'low'"),
    ],
)
def test_a_bad_scheduler_niceness_stops_the_scheduler_and_names_it(
    tmp_path, fresh_instance, raw, message
):
    result = _run(["scheduler"], {**fresh_instance, "PRO_SCHEDULER_NICENESS": raw}, tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
