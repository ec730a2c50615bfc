"""Benchmark of the scheduler's idle pass on PostgreSQL: 100,000 patients, nothing due.

Not a test (run by ``make bench-idle``). Creates its own database at PRO_TEST_POSTGRES_URL
(default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``, as for the tests) and bulk-loads
two sites of patients with every time point the schedule gives them and their SMS, the same
realistic mix as ``bench/bench_board.py`` (about 8 time points and 15 messages a patient).

One catch-up pass runs every job once (whatever fell due while the data was loaded). Then the
idle pass, which is what the scheduler process does all day between sendings, runs N times:
windows, invitations, reminders, reconcile and dispatch, each in its own application context,
exactly as ``pro-service jobs run <name>`` runs them. Reported: the median and the 95th
percentile of the whole pass and of each job, and the SQL statements it issues.

The baseline in the same run is the floor of those statements: as many ``SELECT 1`` round trips
through psycopg as the pass issues (goal for the pass itself: < 50 ms; the ratio shows how much
of it is more than the round trips).

    .venv/bin/python bench/bench_idle_pass.py [--patients 100000] [--runs 30] [--keep]
    .venv/bin/python bench/bench_idle_pass.py --database-url URL   (a database kept with --keep)
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_board import _psycopg_url, create_database, drop_database, seed  # noqa: E402

JOB_ORDER = ("windows", "invitations", "reminders", "reconcile", "dispatch")


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def measure(url: str, runs: int) -> None:
    import psycopg

    from pro_service import create_app
    from pro_service.scheduler.jobs import run_job

    app = create_app(
        {"database_url": url, "env": "test", "log_level": "WARNING", "sms_backend": "console"}
    )
    logging.getLogger("pro_service.scheduler.jobs").setLevel(logging.WARNING)  # one line a job
    engine = app.extensions["pro_db"]["engine"]
    statements = [0]

    @event.listens_for(engine, "before_cursor_execute")
    def _count(*_args: object) -> None:
        statements[0] += 1

    started = time.perf_counter()
    for name in JOB_ORDER:
        print(f"catch-up {name}: {run_job(app, name)}")
    print(f"catch-up pass took {time.perf_counter() - started:.1f} s")

    floor = psycopg.connect(_psycopg_url(url), autocommit=True)
    per_job: dict[str, list[float]] = {name: [] for name in JOB_ORDER}
    passes: list[float] = []
    floors: list[float] = []
    counted: list[int] = []
    for _ in range(runs):
        statements[0] = 0
        started = time.perf_counter()
        for name in JOB_ORDER:
            job_started = time.perf_counter()
            summary = run_job(app, name)
            per_job[name].append(time.perf_counter() - job_started)
            busy = "queued 0" not in summary and "opened 0, expired 0" not in summary
            if busy and name in ("windows", "invitations", "reminders"):
                print(f"  (not idle: {name}: {summary})")
        passes.append(time.perf_counter() - started)
        counted.append(statements[0])
        # The floor right after, under the same load: one round trip per statement.
        started = time.perf_counter()
        for _ in range(statements[0]):
            floor.execute("SELECT 1").fetchone()
        floors.append(time.perf_counter() - started)
    floor.close()

    def ms(values: list[float]) -> str:
        return (
            f"median {statistics.median(values) * 1000:6.1f} ms, "
            f"p95 {_percentile(values, 0.95) * 1000:6.1f} ms"
        )

    print(f"\nidle pass over {runs} runs, {statistics.median(counted):.0f} SQL statements a pass")
    for name in JOB_ORDER:
        print(f"  {name:12} {ms(per_job[name])}")
    print(f"  {'whole pass':12} {ms(passes)}   (goal: < 50 ms)")
    print(f"  {'floor':12} {ms(floors)}   (SELECT 1 round trips, as many as the pass issues)")
    print(f"ratio pass / floor: {statistics.median(passes) / statistics.median(floors):.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000, help="patients in all")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument(
        "--database-url", help="measure a database kept by an earlier run (--keep) instead"
    )
    args = parser.parse_args()
    if args.database_url:
        measure(args.database_url, args.runs)
        return
    url = create_database()
    try:
        # bench_board's seed loads a main site of N patients and a second one of N/5.
        seed(url, patients=args.patients * 5 // 6)
        measure(url, args.runs)
    finally:
        if args.keep:
            print(f"kept {url}")
        else:
            drop_database(url)


if __name__ == "__main__":
    main()
