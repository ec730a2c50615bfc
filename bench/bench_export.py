"""Benchmark: wide and long exports against PostgreSQL's own COPY of the same values.

Not a test (run by ``make bench``). Builds a throw-away PostgreSQL database (a new, uniquely
named one on the server of ``--postgres-url``, by default PRO_TEST_POSTGRES_URL as for the
tests) with 10,000 and then 100,000 completed assessments (bulk COPY; answers drawn from a pool
of scored answer sets), and at each size measures, each in a fresh child process so that the
peak RSS is the export's own, ``--repeat`` times in turn (best and slowest reported):

- ``wide`` and ``long`` CSV exports (``write_export``, as ``pro-service export`` runs it), and
  the wide table as SPSS ``sav`` and Stata ``dta``;
- the baselines, ``COPY (SELECT ...) TO STDOUT WITH CSV`` of the same values written here
  independently of the export code: for ``long``, the score rows with their assessment, patient
  and site columns; for ``wide``, one row per assessment with every score and every answer
  pivoted in SQL (a ``FILTER`` aggregate per column), in the export's order. sav and dta are
  compared with the wide CSV export of the same rows.

Prints times, peak memory and the ratios the issue sets targets for (CSV export within 3x of its
COPY; sav and dta within 2x of the wide CSV export; peak memory at 100,000 no more than 20%
above that at 10,000, for all four exports).

    .venv/bin/python bench/bench_export.py [--postgres-url URL] [--keep] [--sizes 10000,100000]
        [--repeat 2]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The PostgreSQL server, as for the tests (tests/conftest.py); a database is created on it.
POSTGRES_URL = os.environ.get(
    "PRO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
TIMEPOINTS = ("baseline", "preop", "m3", "m6", "m9", "m12", "m18", "m24")
SITES = ("SE-UPP", "SE-GBG", "SE-LUN", "SE-STO", "SE-LIN", "FI-HEL")
POOL = 1000  # distinct answer sets, each scored once

# Every time point with its state columns (the export's default); a time point without scores
# would get one row with them empty (here every time point is completed).
LONG_COPY = """
SELECT p.study_id, si.code, a.timepoint, a.completed_at, a.status, a.missing_reason, a.mode,
       a.review_flag, s.instrument_id, s.instrument_version, a.language, s.scale, s.value,
       s.items_in_scale, s.items_answered, s.algorithm_version
FROM assessments a JOIN patients p ON p.id = a.patient_id JOIN sites si ON si.id = p.site_id
LEFT JOIN scores s ON s.assessment_id = a.id
ORDER BY p.study_id, a.due_date, a.id, s.id
"""


def wide_pivot_copy() -> str:
    """One row per time point: its columns and state, every score and every answer."""
    from pro_service.instruments import load_instruments
    from pro_service.settings import load_settings

    registry = load_instruments(load_settings({}).questionnaire_dir, None)
    scales = list(dict.fromkeys(code for i in registry.latest() for code in i.score_codes))
    items = sorted({n for i in registry.latest() for n in i.items})
    score_columns = "".join(f", max(value) FILTER (WHERE scale = '{c}')" for c in scales)
    item_columns = "".join(f", max(code) FILTER (WHERE item_number = {n})" for n in items)
    return f"""
SELECT p.study_id, si.code, a.timepoint,
       (a.completed_at AT TIME ZONE si.time_zone)::date - p.surgery_date, a.completed_at,
       a.status, a.missing_reason, a.mode, a.review_flag, a.language, sc.*, rs.*
FROM assessments a JOIN patients p ON p.id = a.patient_id JOIN sites si ON si.id = p.site_id
LEFT JOIN (SELECT assessment_id, string_agg(DISTINCT algorithm_version, ';') {score_columns}
           FROM scores GROUP BY assessment_id) sc ON sc.assessment_id = a.id
LEFT JOIN (SELECT assessment_id {item_columns}
           FROM responses GROUP BY assessment_id) rs ON rs.assessment_id = a.id
ORDER BY p.study_id, a.due_date, a.id
"""  # noqa: S608 - codes and numbers from our own instrument files


def _psycopg_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _peak_kb() -> int:
    """This process's own peak resident memory, in kB (Linux).

    Not ``getrusage(RUSAGE_SELF).ru_maxrss``: Linux carries that high-water mark across
    fork and exec, so every child would report at least the parent's size at the fork.
    ``VmHWM`` belongs to the child's own address space.
    """
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


# ---------------------------------------------------------------------------------------------
# Children: one measurement each, result as JSON on stdout.


def child_export(url: str, fmt: str, out: str) -> None:
    from pro_service import create_app
    from pro_service.exports import ExportFilters, write_export
    from pro_service.extensions import db

    app = create_app({"database_url": url, "instance_dir": Path(out).parent / "instance"})
    with app.app_context():
        start = time.perf_counter()
        result = write_export(
            db.session,
            fmt=fmt,
            path=Path(out),
            filters=ExportFilters(),
            registry=app.extensions["instruments"],
            schedule=app.extensions["schedule"],
            base_url="https://bench.example.test",
            now=datetime.now(UTC),
        )
        seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_kb": _peak_kb(), "rows": result.rows}))


def child_copy(url: str, which: str, out: str) -> None:
    import psycopg

    query = LONG_COPY if which == "long" else wide_pivot_copy()
    start = time.perf_counter()
    with psycopg.connect(_psycopg_url(url)) as conn, open(out, "wb") as f:
        conn.execute("SET extra_float_digits = 1")
        conn.execute("SET jit = off")  # as the wide export does: the same chance for both
        with conn.cursor().copy(f"COPY ({query}) TO STDOUT WITH CSV") as copy:
            for block in copy:
                f.write(block)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_kb": _peak_kb(), "bytes": os.path.getsize(out)}))


def measure(args: list[str]) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRO_")}
    env["PRO_LOG_LEVEL"] = "WARNING"
    done = subprocess.run(  # noqa: S603  (our own script)
        [sys.executable, __file__, "child", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------
# Data: bulk COPY into a migrated database.


def _answer_pool(registry):  # type: ignore[no-untyped-def]
    from pro_service.instruments import ALGORITHM_VERSION, score_instrument

    rng = random.Random(6)  # noqa: S311  (benchmark data)
    instruments = [registry.by_key("qlq-c30:3.0"), registry.by_key("qlq-pan26:1.0")]
    pool = []
    for _ in range(POOL):
        answers = {}
        for instrument in instruments:
            for number, item in instrument.items.items():
                if rng.random() < 0.97:
                    answers[number] = rng.choice(item.codes)
        response_lines = []
        score_lines = []
        for instrument in instruments:
            for number in instrument.items:
                if number in answers:
                    response_lines.append(
                        f"{instrument.id}\t{instrument.version}\t{{lang}}\t{number}\t{answers[number]}"
                    )
            for code, score in score_instrument(instrument, answers).items():
                value = "\\N" if score.value is None else repr(score.value)
                score_lines.append(
                    f"{instrument.id}\t{instrument.version}\t{code}\t{value}\t"
                    f"{score.items_in_scale}\t{score.items_answered}\t{ALGORITHM_VERSION}"
                )
        pool.append((response_lines, score_lines))
    return pool


def load(url: str, first_patient: int, patients: int, pool) -> None:  # type: ignore[no-untyped-def]
    import psycopg

    rng = random.Random(first_patient)  # noqa: S311
    now = datetime(2026, 3, 1, 12, tzinfo=UTC).isoformat()
    instruments_json = json.dumps(["qlq-c30:3.0", "qlq-pan26:1.0"])
    per_patient = len(TIMEPOINTS)
    with psycopg.connect(_psycopg_url(url)) as conn:
        if first_patient == 1:
            with conn.cursor().copy(
                "COPY sites (id, code, name, country, time_zone, default_language, "
                "sending_start, sending_end, created_at) FROM STDIN"
            ) as copy:
                for i, code in enumerate(SITES, 1):
                    fi = code.startswith("FI")
                    tz = "Europe/Helsinki" if fi else "Europe/Stockholm"
                    lang = "fi" if fi else "sv"
                    copy.write(
                        f"{i}\t{code}\t{code}\t{code[:2]}\t{tz}\t{lang}\t09:00\t20:00\t{now}\n"
                    )
        patient_buf, assessment_buf, response_buf, score_buf = (io.StringIO() for _ in range(4))
        response_id = (first_patient - 1) * per_patient * 60
        score_id = (first_patient - 1) * per_patient * 40
        for pid in range(first_patient, first_patient + patients):
            site = (pid % len(SITES)) + 1
            lang = "fi" if SITES[site - 1].startswith("FI") else ("sv" if pid % 5 else "en")
            inclusion = date(2024, 1, 1) + timedelta(days=pid % 300)
            surgery = inclusion + timedelta(days=130)
            patient_buf.write(
                f"{pid}\tP{pid:06d}\t{site}\t{lang}\t\\N\t\\N\tt\t{inclusion}\t{surgery}\t"
                f"active\tf\t\\N\t{now}\t{now}\n"
            )
            for t, tp in enumerate(TIMEPOINTS):
                aid = (pid - 1) * per_patient + t + 1
                due = inclusion if t == 0 else surgery + timedelta(days=-7 if t == 1 else 91 * t)
                done = datetime.combine(due, datetime.min.time(), tzinfo=UTC) + timedelta(hours=10)
                anchor = "inclusion" if t == 0 else "surgery"
                assessment_buf.write(
                    f"{aid}\t{pid}\t{tp}\t{anchor}\t{due}\t{due - timedelta(days=14)}\t"
                    f"{due + timedelta(days=14)}\t{instruments_json}\tcompleted\t\\N\t\\N\t{lang}\t"
                    f"{done.isoformat()}\t{done.isoformat()}\t{done.isoformat()}\t"
                    f"{done.isoformat()}\t{now}\t{now}\n"
                )
                responses, scores = pool[rng.randrange(len(pool))]
                for line in responses:
                    response_id += 1
                    response_buf.write(
                        f"{response_id}\t{aid}\t{line.replace('{lang}', lang)}\t{now}\n"
                    )
                for line in scores:
                    score_id += 1
                    score_buf.write(f"{score_id}\t{aid}\t{line}\t{now}\t{lang}\n")
        with conn.cursor() as cur:
            for table, columns, buf in (
                (
                    "patients",
                    "id, study_id, site_id, language, phone_encrypted, phone_lookup, "
                    "phone_invalid, inclusion_date, surgery_date, status, opted_out, opted_out_at, "
                    "created_at, updated_at",
                    patient_buf,
                ),
                (
                    "assessments",
                    "id, patient_id, timepoint, anchor, due_date, window_opens, window_closes, "
                    "instruments, status, token_hash, token_encrypted, language, opened_at, "
                    "started_at, completed_at, closed_at, created_at, updated_at",
                    assessment_buf,
                ),
                (
                    "responses",
                    "id, assessment_id, instrument_id, instrument_version, language, item_number, "
                    "code, answered_at",
                    response_buf,
                ),
                (
                    "scores",
                    "id, assessment_id, instrument_id, instrument_version, scale, value, "
                    "items_in_scale, items_answered, algorithm_version, computed_at, language",
                    score_buf,
                ),
            ):
                with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    copy.write(buf.getvalue())
                buf.close()
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--postgres-url",
        default=POSTGRES_URL,
        help="a PostgreSQL server and a database to connect to for creating the benchmark's "
        "own (default: PRO_TEST_POSTGRES_URL, as for the tests)",
    )
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each measurement")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    options = parser.parse_args()
    sizes = [int(s) for s in options.sizes.split(",")]

    import psycopg
    from sqlalchemy.engine import make_url

    from pro_service import migrate
    from pro_service.db import make_engine
    from pro_service.instruments import load_instruments
    from pro_service.settings import load_settings

    name = f"pro_bench_export_{uuid.uuid4().hex[:8]}"
    admin = _psycopg_url(options.postgres_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(options.postgres_url).set(database=name).render_as_string(hide_password=False)
    url = _psycopg_url(url)
    results: dict[int, dict[str, dict[str, float]]] = {}
    try:
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        settings = load_settings({})
        registry = load_instruments(settings.questionnaire_dir, None)
        pool = _answer_pool(registry)
        loaded_patients = 0
        with tempfile.TemporaryDirectory(prefix="pro-bench-export-") as folder:
            for size in sizes:
                patients = size // len(TIMEPOINTS)
                started = time.perf_counter()
                load(url, loaded_patients + 1, patients - loaded_patients, pool)
                loaded_patients = patients
                took = time.perf_counter() - started
                print(f"loaded {size:,} completed assessments in {took:.0f} s")
                plan = {
                    "COPY long rows": ["copy", url, "long", f"{folder}/copy-long.csv"],
                    "COPY wide pivot": ["copy", url, "wide", f"{folder}/copy-wide.csv"],
                    "export long": ["export", url, "long", f"{folder}/long.csv"],
                    "export wide": ["export", url, "wide", f"{folder}/wide.csv"],
                    "export sav": ["export", url, "sav", f"{folder}/wide.sav"],
                    "export dta": ["export", url, "dta", f"{folder}/wide.dta"],
                }
                every: dict[str, list[dict[str, float]]] = {label: [] for label in plan}
                for _ in range(options.repeat):  # in turn, so that all see the same load
                    for label, args in plan.items():
                        every[label].append(measure(args))
                runs = {}
                for label, measured in every.items():
                    times = [m["seconds"] for m in measured]
                    runs[label] = min(measured, key=lambda m: m["seconds"])
                    runs[label]["slowest"] = max(times)
                    runs[label]["peak_kb"] = max(m["peak_kb"] for m in measured)
                    mb = runs[label]["peak_kb"] / 1024
                    print(
                        f"  {label:15} best {min(times):7.2f} s, slowest {max(times):7.2f} s"
                        f"  peak RSS {mb:7.1f} MB"
                    )
                for fmt, baseline in (("long", "COPY long rows"), ("wide", "COPY wide pivot")):
                    ratio = runs[f"export {fmt}"]["seconds"] / runs[baseline]["seconds"]
                    worst = runs[f"export {fmt}"]["slowest"] / runs[baseline]["slowest"]
                    print(
                        f"  {fmt} export / {baseline}: {ratio:.2f}x best, {worst:.2f}x slowest "
                        "(target <= 3x)"
                    )
                for fmt in ("sav", "dta"):
                    ratio = runs[f"export {fmt}"]["seconds"] / runs["export wide"]["seconds"]
                    worst = runs[f"export {fmt}"]["slowest"] / runs["export wide"]["slowest"]
                    print(
                        f"  {fmt} export / wide CSV export: {ratio:.2f}x best, {worst:.2f}x "
                        "slowest (target <= 2x)"
                    )
                results[size] = runs
        if len(sizes) > 1:
            small, large = sizes[0], sizes[-1]
            for fmt in ("long", "wide", "sav", "dta"):
                a = results[small][f"export {fmt}"]["peak_kb"]
                b = results[large][f"export {fmt}"]["peak_kb"]
                print(
                    f"{fmt}: peak RSS at {large:,} / at {small:,} = {b / a:.3f} "
                    f"({(b / a - 1) * 100:+.1f}%; target <= +20%)"
                )
    finally:
        if not options.keep:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            print(f"kept database {name}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        kind, url, what, out = sys.argv[2:6]
        if kind == "export":
            child_export(url, what, out)
        else:
            child_copy(url, what, out)
    else:
        main()
