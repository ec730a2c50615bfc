"""Real scheduler processes on PostgreSQL: two racing, and one killed mid-dispatch.

The processes are the real ``pro-service jobs run ...`` console script; the fake Twilio server
runs in this test process and counts what each number received.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, text

from pro_service.crypto import Vault, hash_token, new_link_token
from pro_service.db import make_engine
from pro_service.messaging.texts import patient_link
from pro_service.models import Assessment, OutboxMessage, Patient, Site
from pro_service.settings import load_settings

from .conftest import SENDER

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PRO_SERVICE = shutil.which("pro-service", path=str(Path(sys.executable).parent))
PUBLIC = "https://pro.example.test"


@pytest.fixture
def database_url(postgres_database):
    """These tests are about PostgreSQL's row locks: PostgreSQL only."""
    yield postgres_database
    engine = make_engine(postgres_database)
    with engine.begin() as conn:
        conn.execute(
            text(
                "TRUNCATE audit_events, outbox_messages, scores, responses, assessments, "
                "patients, site_memberships, staff_users, sites RESTART IDENTITY CASCADE"
            )
        )
    engine.dispose()


def _seed(database_url: str, count: int) -> list[str]:
    """``count`` patients, each with an open time point and one due invitation."""
    vault = Vault(load_settings({}).encryption_keys)
    engine = make_engine(database_url)
    now = datetime.now(UTC)
    today = now.astimezone(ZoneInfo("Europe/Stockholm")).date()
    numbers = [f"+4670{i:07d}" for i in range(count)]
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        site = Site(
            code="RACE",
            name="Race",
            country="SE",
            time_zone="Europe/Stockholm",
            default_language="sv",
            sending_start="00:00",  # these tests run at any hour
            sending_end="24:00",
            created_at=now,
        )
        session.add(site)
        assessments = []
        for i, number in enumerate(numbers):
            patient = Patient(
                study_id=f"R-{i:05d}",
                site=site,
                language=("sv", "fi", "en")[i % 3],
                phone_encrypted=vault.encrypt(number),
                phone_lookup=vault.phone_lookup(number),
                phone_invalid=False,
                inclusion_date=today,
                status="active",
                opted_out=False,
                created_at=now,
                updated_at=now,
            )
            token = new_link_token()
            assessments.append(
                Assessment(
                    patient=patient,
                    timepoint="baseline",
                    anchor="inclusion",
                    due_date=today,
                    window_opens=today,
                    window_closes=today + timedelta(days=14),
                    instruments=["qlq-c30:3.0", "qlq-pan26:1.0"],
                    status="open",
                    token_hash=hash_token(token),
                    token_encrypted=vault.encrypt(token),
                    opened_at=now,
                    invitation_queued_at=now,
                    created_at=now,
                    updated_at=now,
                )
            )
        session.add_all(assessments)
        session.flush()
        session.add_all(
            OutboxMessage(
                patient_id=a.patient_id,
                assessment_id=a.id,
                kind="invitation",
                language=a.patient.language,
                scheduled_for=now - timedelta(minutes=1),
                status="pending",
                attempts=0,
                created_at=now,
                updated_at=now,
            )
            for a in assessments
        )
        session.commit()
    engine.dispose()
    assert patient_link(PUBLIC, "x")  # the links in the bodies use PUBLIC
    return numbers


def _env(database_url, fake, tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRO_")}
    env.update(
        {
            "PRO_ENV": "test",
            "PRO_DATABASE_URL": database_url,
            "PRO_INSTANCE_DIR": str(tmp_path / "instance"),
            "PRO_PUBLIC_BASE_URL": PUBLIC,
            "PRO_SMS_BACKEND": "twilio",
            "PRO_TWILIO_ACCOUNT_SID": fake.account_sid,
            "PRO_TWILIO_AUTH_TOKEN": fake.auth_token,
            "PRO_TWILIO_FROM": SENDER,
            "PRO_TWILIO_API_BASE_URL": fake.base_url,
            "PRO_LOG_LEVEL": "WARNING",
            # These tests time real processes against each other: all at one priority.
            "PRO_SCHEDULER_NICENESS": "0",
        }
    )
    env.update(extra)
    return env


def _statuses(database_url):
    engine = make_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        ).all()
    engine.dispose()
    return dict(rows)


def _wait_for_leases_to_lapse(database_url, deadline):
    """Until the dead process's claims have lapsed (polling the database, not the clock)."""
    engine = make_engine(database_url)
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            latest = conn.scalar(
                select(func.max(OutboxMessage.next_attempt_at)).where(
                    OutboxMessage.status == "sending"
                )
            )
        if latest is None or latest < datetime.now(UTC):
            break
        time.sleep(0.2)
    engine.dispose()


def _run(args, env):
    return subprocess.run(  # noqa: S603
        [PRO_SERVICE, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_two_scheduler_processes_racing_send_every_message_exactly_once(
    database_url, fake_twilio, tmp_path
):
    numbers = _seed(database_url, 3000)
    env = _env(database_url, fake_twilio, tmp_path)
    racers = [
        subprocess.Popen(  # noqa: S603
            [PRO_SERVICE, "jobs", "run", "dispatch"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for racer in racers:
        _out, err = racer.communicate(timeout=300)
        assert racer.returncode == 0, err
    for _ in range(3):  # a dispatch run stops after 50 s; finish whatever is left
        if _statuses(database_url).get("pending", 0) == 0:
            break
        assert _run(["jobs", "run", "dispatch"], env).returncode == 0

    assert _statuses(database_url) == {"sent": 3000}  # none lost
    counts = fake_twilio.counts()
    assert len(fake_twilio.messages) == 3000  # none twice
    assert all(counts[n] == 1 for n in numbers)
    engine = make_engine(database_url)
    with engine.connect() as conn:
        claimers = conn.execute(
            select(OutboxMessage.claimed_by, func.count()).group_by(OutboxMessage.claimed_by)
        ).all()
    engine.dispose()
    pids = {claimer.split(":")[1] for claimer, _count in claimers}
    assert {str(r.pid) for r in racers} <= pids, "both processes sent a share at the same time"


def test_a_scheduler_killed_mid_dispatch_with_a_slow_provider_loses_nothing_and_repeats_nothing(
    database_url, fake_twilio, tmp_path
):
    """Twilio answers slowly: the whole queue takes far longer than one claim's lease (200 x
    0.5 s / 8 senders = 12.5 s against a 7 s lease), the process is SIGKILLed with calls in
    flight, and a restart settles everything: each number gets its SMS exactly once, and no
    message is failed for the crash or the provider's slowness."""
    numbers = _seed(database_url, 200)
    env = _env(
        database_url,
        fake_twilio,
        tmp_path,
        PRO_TWILIO_TIMEOUT_SECONDS="2",
        PRO_SMS_CLAIM_LEASE_SECONDS="7",
        PRO_SMS_POOL_SIZE="8",
    )
    fake_twilio.delay = 0.5  # every answer comes late, so the kill lands mid-call
    process = subprocess.Popen(  # noqa: S603
        [PRO_SERVICE, "jobs", "run", "dispatch"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 180
    while len(fake_twilio.messages) < 60 and time.monotonic() < deadline:
        time.sleep(0.002)
    # Messages exist at Twilio whose answers the process is still waiting for.
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert fake_twilio.in_flight_peak == 8  # the pool had 8 calls in flight, not more
    assert _statuses(database_url).get("sending", 0) >= 1

    _wait_for_leases_to_lapse(database_url, deadline)
    engine = make_engine(database_url)

    result = _run(["jobs", "run", "all"], env)  # the restart, with Twilio still slow
    assert result.returncode == 0, result.stderr
    reconcile_line = next(
        line for line in result.stdout.splitlines() if line.startswith("reconcile")
    )
    found = int(reconcile_line.split(" sent ")[1].split(",")[0])
    assert 1 <= found <= 8, reconcile_line  # the calls in flight at the kill, found at Twilio

    assert _statuses(database_url) == {"sent": 200}, result.stderr[-3000:] + result.stdout
    counts = fake_twilio.counts()
    assert len(fake_twilio.messages) == 200
    assert all(counts[n] == 1 for n in numbers)
    with engine.connect() as conn:
        most_attempts = conn.scalar(select(func.max(OutboxMessage.attempts)))
    engine.dispose()
    assert most_attempts == 1  # neither the claims lost in the crash nor the hand-backs counted


def test_a_rate_limited_scheduler_honours_retry_after_and_sends_everything_once(
    database_url, fake_twilio, tmp_path
):
    """Twilio allows 20 creates a second and answers the rest with 429 and Retry-After: 1."""
    numbers = _seed(database_url, 300)
    env = _env(database_url, fake_twilio, tmp_path, PRO_SMS_POOL_SIZE="8")
    fake_twilio.rate_limit = 20
    fake_twilio.rate_limit_retry_after = "1"
    result = _run(["jobs", "run", "dispatch"], env)
    assert result.returncode == 0, result.stderr
    assert "rate-limited" in result.stdout  # the limit was reached and obeyed
    assert _statuses(database_url) == {"sent": 300}, result.stdout
    counts = fake_twilio.counts()
    assert len(fake_twilio.messages) == 300
    assert all(counts[n] == 1 for n in numbers)


def test_a_slow_provider_with_recovery_running_and_a_kill_loses_and_repeats_nothing(
    database_url, fake_twilio, tmp_path
):
    """The probe's case: the provider answers slowly, so a claimed batch takes longer than the
    claim's lease, while another process runs recovery the whole time; then the dispatcher is
    killed mid-batch and a new process finishes. Every message is sent exactly once, none is
    given up, and no hand-back is counted as an attempt."""
    import threading

    numbers = _seed(database_url, 40)
    env = _env(
        database_url,
        fake_twilio,
        tmp_path,
        PRO_TWILIO_TIMEOUT_SECONDS="0.6",
        PRO_SMS_CLAIM_LEASE_SECONDS="2",
    )
    fake_twilio.delay = 0.25  # 40 messages take 10 s: five leases
    dispatching = subprocess.Popen(  # noqa: S603
        [PRO_SERVICE, "jobs", "run", "dispatch"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stop = threading.Event()
    recovery_runs: list[subprocess.CompletedProcess[str]] = []

    def recover() -> None:  # a second scheduler process, reconciling as it does every minute
        while not stop.is_set():
            recovery_runs.append(_run(["jobs", "run", "reconcile"], env))

    recovering = threading.Thread(target=recover)
    recovering.start()
    deadline = time.monotonic() + 120
    while len(fake_twilio.messages) < 25 and time.monotonic() < deadline:
        time.sleep(0.002)
    dispatching.send_signal(signal.SIGKILL)  # mid-call: the 25th message exists at Twilio
    dispatching.wait()
    stop.set()
    recovering.join()
    fake_twilio.delay = 0.0
    assert recovery_runs and all(r.returncode == 0 for r in recovery_runs)

    # After the dead process's lease, a new process settles the one in flight and sends the rest.
    _wait_for_leases_to_lapse(database_url, deadline)
    result = _run(["jobs", "run", "all"], env)
    assert result.returncode == 0, result.stderr

    assert _statuses(database_url) == {"sent": 40}, result.stdout  # none lost, none given up
    counts = fake_twilio.counts()
    assert len(fake_twilio.messages) == 40  # none twice
    assert all(counts[n] == 1 for n in numbers)
    engine = make_engine(database_url)
    with engine.connect() as conn:
        attempts = conn.scalars(select(OutboxMessage.attempts)).all()
    engine.dispose()
    assert max(attempts) <= 1, sorted(attempts)  # one provider call each, at most
