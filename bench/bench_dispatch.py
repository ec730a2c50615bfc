"""Benchmark of the 09:00 blast: many invitations due at once, a provider answering slowly.

Not a test (run by ``make bench-dispatch``). Creates its own PostgreSQL database at
PRO_TEST_POSTGRES_URL (default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``, as for the
tests) or ``--postgres-url``, starts the tests' fake Twilio on 127.0.0.1 answering every message
after ``--delay`` seconds, and for each round:

1. **bare**: the official twilio client alone sends the same number of messages with the same
   number of threads (one client per thread), no database: the cheapest path doing the same
   provider work;
2. **dispatch**: ``pro-service jobs run dispatch``, one real scheduler process, sends every due
   invitation (start-up included);
3. **two processes and a kill**: two ``jobs run dispatch`` processes share the queue, one is
   killed with SIGKILL mid-blast, and after its lease a ``jobs run all`` settles the rest; it
   reports messages lost and duplicated.

Reported: messages per second of each, the ideal rate (pool size / delay), and the ratios
dispatch / ideal and dispatch / bare.

    .venv/bin/python bench/bench_dispatch.py [--messages 2000] [--pool 8] [--delay 0.2] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from messaging.fake_twilio import FakeTwilio  # noqa: E402
from messaging.test_scheduler_processes import _env, _seed  # noqa: E402

from pro_service import migrate  # noqa: E402
from pro_service.db import make_engine  # noqa: E402
from pro_service.models import OutboxMessage  # noqa: E402

PRO_SERVICE = shutil.which("pro-service", path=str(Path(sys.executable).parent))
ADMIN_URL = os.environ.get(
    "PRO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _database(admin_url: str) -> tuple[str, str]:
    name = f"pro_bench_dispatch_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return name, url


def _drop(admin_url: str, name: str) -> None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :n AND pid <> pg_backend_pid()"
            ),
            {"n": name},
        )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def _empty(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "TRUNCATE audit_events, outbox_messages, scores, responses, assessments, "
                "patients, site_memberships, staff_users, sites RESTART IDENTITY CASCADE"
            )
        )
    engine.dispose()


def _statuses(url: str) -> dict[str, int]:
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        ).all()
    engine.dispose()
    return {status: count for status, count in rows}


def _reset(fake: FakeTwilio) -> None:
    with fake.lock:
        fake.messages.clear()


def bare(fake: FakeTwilio, messages: int, pool: int) -> float:
    """Seconds for the twilio client alone to create ``messages`` with ``pool`` threads."""
    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client

    local = threading.local()

    def client() -> Client:
        if not hasattr(local, "client"):
            http = TwilioHttpClient(timeout=10)
            local.client = Client(fake.account_sid, fake.auth_token, http_client=http)
            local.client.api.base_url = fake.base_url  # type: ignore[misc]
        return local.client

    def send(i: int) -> None:
        client().messages.create(to=f"+4671{i:07d}", from_="+46700000001", body="bench")

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=pool) as workers:
        list(workers.map(send, range(messages)))
    return time.perf_counter() - started


def dispatch(url: str, fake: FakeTwilio, messages: int, env: dict[str, str]) -> float:
    _seed(url, messages)
    started = time.perf_counter()
    result = subprocess.run(  # noqa: S603
        [PRO_SERVICE, "jobs", "run", "dispatch"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    left = _statuses(url)
    if left != {"sent": messages} or len(fake.messages) != messages:
        raise SystemExit(f"dispatch did not send every message once: {left}, {len(fake.messages)}")
    return elapsed


def killed(url: str, fake: FakeTwilio, messages: int, env: dict[str, str]) -> tuple[int, int]:
    """Two processes, one killed mid-blast, then a restart: (lost, duplicated)."""
    numbers = _seed(url, messages)
    processes = [
        subprocess.Popen(  # noqa: S603
            [PRO_SERVICE, "jobs", "run", "dispatch"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    deadline = time.monotonic() + 1800
    while len(fake.messages) < messages // 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    processes[0].send_signal(signal.SIGKILL)
    processes[0].wait()
    processes[1].wait(timeout=1800)
    lease = int(env["PRO_SMS_CLAIM_LEASE_SECONDS"])
    time.sleep(lease + 1)  # the dead process's claims lapse
    for _ in range(3):
        subprocess.run(  # noqa: S603
            [PRO_SERVICE, "jobs", "run", "all"], env=env, capture_output=True, check=False
        )
        if _statuses(url).get("sent", 0) == messages:
            break
    counts = fake.counts()
    lost = sum(1 for n in numbers if counts[n] == 0)
    duplicated = sum(counts[n] - 1 for n in numbers if counts[n] > 1)
    return lost, duplicated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--pool", type=int, default=8)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--postgres-url", default=ADMIN_URL)
    args = parser.parse_args()

    name, url = _database(args.postgres_url)
    fake = FakeTwilio().start()
    fake.delay = args.delay
    ideal = args.pool / args.delay
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = _env(
                url,
                fake,
                Path(tmp),
                PRO_SMS_POOL_SIZE=str(args.pool),
                PRO_TWILIO_TIMEOUT_SECONDS="5",
                PRO_SMS_CLAIM_LEASE_SECONDS="20",
            )
            for round_number in range(1, args.rounds + 1):
                _reset(fake)
                bare_seconds = bare(fake, args.messages, args.pool)
                _reset(fake)
                _empty(url)
                dispatch_seconds = dispatch(url, fake, args.messages, env)
                _reset(fake)
                _empty(url)
                lost, duplicated = killed(url, fake, args.messages, env)
                _empty(url)
                row = {
                    "bare": args.messages / bare_seconds,
                    "dispatch": args.messages / dispatch_seconds,
                    "seconds": dispatch_seconds,
                    "lost": lost,
                    "duplicated": duplicated,
                }
                rows.append(row)
                print(
                    f"round {round_number}: bare {row['bare']:.1f} msg/s, "
                    f"dispatch {row['dispatch']:.1f} msg/s ({dispatch_seconds:.1f} s for "
                    f"{args.messages}), ideal {ideal:.1f} msg/s; dispatch/ideal "
                    f"{row['dispatch'] / ideal:.2f}, dispatch/bare "
                    f"{row['dispatch'] / row['bare']:.2f}; two processes with a SIGKILL: "
                    f"{lost} lost, {duplicated} duplicated",
                    flush=True,
                )
    finally:
        fake.stop()
        _drop(args.postgres_url, name)
    ratios = [r["dispatch"] / ideal for r in rows]
    bare_ratios = [r["dispatch"] / r["bare"] for r in rows]
    print(
        f"dispatch/ideal {min(ratios):.2f}-{max(ratios):.2f} (median "
        f"{statistics.median(ratios):.2f}), dispatch/bare {min(bare_ratios):.2f}-"
        f"{max(bare_ratios):.2f}, longest blast {max(r['seconds'] for r in rows):.1f} s, "
        f"lost {sum(r['lost'] for r in rows)}, duplicated {sum(r['duplicated'] for r in rows)}"
    )


if __name__ == "__main__":
    main()
