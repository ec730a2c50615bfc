"""Benchmark of the completion board on PostgreSQL: a site of 5,000 patients.

Not a test (run by ``make bench-board``). Creates its own database at PRO_TEST_POSTGRES_URL
(default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``, as for the tests), bulk-loads
(COPY) a site of 5,000 patients with every time point the schedule gives them (a realistic mix:
completed, missed, open, in progress, overdue, upcoming, cancelled for those who left the study)
and their SMS (invitations, reminders; delivered, sent, undelivered, failed, pending,
cancelled), plus a second site of 1,000 patients, then measures with the Flask test client
signed in as that site's nurse:

- the board's first page (``/staff/board``): median time over N runs and SQL statements per
  request (and the time spent inside those statements);
- a patient page (``/staff/patients/<id>``) when that endpoint exists (skipped otherwise);
- the plain SQL that fetches the same rows and counts the board's page shows, run directly with
  psycopg (the database's share), each run right after a board request so both see the same
  machine load, and the ratio board / plain SQL (target: at most 3x).

    .venv/bin/python bench/bench_board.py [--patients 5000] [--runs 30] [--keep]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import statistics
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get(
    "PRO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
PASSWORD = "bench password, long enough"  # noqa: S105  (a throw-away bench database)
NURSE = "nurse@bench.example.org"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
ZONE = "Europe/Stockholm"
WENT_OUT = ("sending", "sent", "delivered", "undelivered", "failed")

# --- The plain SQL of the board's first page (the database's share) --------------------------

PLAIN_TOTAL = "SELECT count(*) FROM patients WHERE site_id = %(site)s"
PLAIN_PAGE = """
SELECT p.id, p.study_id, p.status, p.opted_out, p.phone_invalid,
       p.phone_invalid OR EXISTS (
           SELECT 1 FROM outbox_messages f
           WHERE f.patient_id = p.id AND f.status = 'failed'
             AND NOT EXISTS (SELECT 1 FROM outbox_messages d
                             WHERE d.patient_id = p.id AND d.id > f.id AND d.status = 'delivered'))
FROM patients p WHERE p.site_id = %(site)s
ORDER BY p.study_id, p.id LIMIT 50
"""
PLAIN_ASSESSMENTS = """
SELECT a.id, a.patient_id, a.timepoint,
       CASE WHEN a.status = 'scheduled' THEN 'upcoming' WHEN a.status = 'expired' THEN 'missed'
            WHEN a.status IN ('open', 'in_progress') AND a.due_date < %(today)s THEN 'overdue'
            ELSE a.status END,
       a.due_date, a.window_opens, a.window_closes, a.completed_at
FROM assessments a WHERE a.patient_id = ANY(%(ids)s)
"""
PLAIN_MESSAGES = """
SELECT DISTINCT ON (assessment_id) assessment_id, status, kind,
       count(*) FILTER (WHERE kind = 'reminder' AND status IN
                        ('sending', 'sent', 'delivered', 'undelivered', 'failed'))
           OVER (PARTITION BY assessment_id)
FROM outbox_messages
WHERE patient_id = ANY(%(ids)s) AND assessment_id IS NOT NULL AND status <> 'cancelled'
ORDER BY assessment_id, created_at DESC, id DESC
"""
PLAIN_COUNTS = """
SELECT CASE WHEN a.status = 'scheduled' THEN 'upcoming' WHEN a.status = 'expired' THEN 'missed'
            WHEN a.status IN ('open', 'in_progress') AND a.due_date < %(today)s THEN 'overdue'
            ELSE a.status END AS shown, count(*)
FROM assessments a JOIN patients p ON p.id = a.patient_id
WHERE p.site_id = %(site)s GROUP BY shown
"""


def _psycopg_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


# --- Database ---------------------------------------------------------------------------------


def create_database() -> str:
    name = f"pro_bench_board_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    name = make_url(url).database
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _copy_value(value: object) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


class Tables:
    """COPY buffers for patients, assessments and messages, with their own id counters."""

    COLUMNS = {
        "patients": "id, study_id, site_id, language, phone_encrypted, phone_lookup, "
        "phone_invalid, inclusion_date, surgery_date, status, opted_out, opted_out_at, "
        "created_at, updated_at",
        "assessments": "id, patient_id, timepoint, anchor, due_date, window_opens, window_closes, "
        "instruments, status, token_hash, token_encrypted, language, opened_at, started_at, "
        "completed_at, closed_at, created_at, updated_at, invitation_queued_at, "
        "next_reminder_on",
        "outbox_messages": "id, patient_id, assessment_id, kind, language, scheduled_for, status, "
        "claimed_at, claimed_by, sent_at, provider_id, provider_status, attempts, "
        "next_attempt_at, error_code, error_message, created_at, updated_at",
    }

    #: The recorded dates of the schedule's own anchors (the decision not to operate); no id.
    ANCHOR_COLUMNS = "patient_id, anchor, day, recorded_at, recorded_by"

    def __init__(self) -> None:
        self.buffers = {name: io.StringIO() for name in self.COLUMNS}
        self.ids = dict.fromkeys(self.COLUMNS, 0)
        self.anchors = io.StringIO()

    def add_anchor(self, patient_id: int, anchor: str, day: date, at: datetime) -> None:
        row = (patient_id, anchor, day, at, None)
        self.anchors.write("\t".join(_copy_value(v) for v in row) + "\n")

    def add(self, table: str, *values: object) -> int:
        self.ids[table] += 1
        row = (self.ids[table], *values)
        self.buffers[table].write("\t".join(_copy_value(v) for v in row) + "\n")
        return self.ids[table]


def _local(day: date, hour: int) -> datetime:
    return datetime.combine(day, clock_time(hour), tzinfo=ZoneInfo(ZONE)).astimezone(UTC)


def add_site_patients(  # type: ignore[no-untyped-def]
    tables: Tables,
    schedule,
    *,
    site_id: int,
    prefix: str,
    count: int,
    today: date,
    now: datetime,
) -> None:
    """``count`` patients included over the last 2.5 years, with a realistic mix of states."""
    rng = random.Random(site_id)  # noqa: S311  (benchmark data)
    instruments = json.dumps(["qlq-c30:3.0", "qlq-pan26:1.0"])
    for n in range(count):
        inclusion = today - timedelta(days=rng.randrange(0, 900))
        roll = rng.random()
        status = "active"
        left_on: date | None = None
        if roll < 0.03:
            status = "not_operated"
        elif roll < 0.08:
            status = "withdrawn"
        elif roll < 0.10:
            status = "deceased"
        surgery = None if status == "not_operated" else inclusion + timedelta(days=130)
        # Not operated: decided during the chemotherapy before surgery; until then the patient
        # is active with no surgery date yet.
        decision = inclusion + timedelta(days=100) if status == "not_operated" else None
        if decision is not None and decision >= today:
            status, decision = "active", None
        if status in ("withdrawn", "deceased"):
            left_on = inclusion + timedelta(days=rng.randrange(20, 600))
            if left_on >= today:
                status, left_on = "active", None
        phone_invalid = rng.random() < 0.02
        opted_out = rng.random() < 0.02
        language = "sv" if rng.random() < 0.85 else "en"
        patient_id = tables.add(
            "patients",
            f"{prefix}-{n + 1:05d}",
            site_id,
            language,
            None,
            None,
            phone_invalid,
            inclusion,
            surgery,
            status,
            opted_out,
            now - timedelta(days=5) if opted_out else None,
            now,
            now,
        )
        anchors = {"inclusion": inclusion, "surgery": surgery, "no_surgery_decision": decision}
        if decision is not None:
            tables.add_anchor(patient_id, "no_surgery_decision", decision, now)
        for tp in schedule.timepoints:
            anchor = anchors[tp.anchor]
            # A follow-up track's time points are its status's only (ScanPan: not operated).
            if anchor is None or tp.track not in (None, status):
                continue
            window = tp.window_for(anchor)
            opened = completed = closed = started = None
            if left_on is not None and window.opens > left_on:
                state = "cancelled"
                closed = _local(left_on, 12)
            elif window.closes < today:
                state = "completed" if rng.random() < 0.84 else "expired"
            elif window.opens <= today:
                r = rng.random()
                state = "completed" if r < 0.4 else "in_progress" if r < 0.55 else "open"
            else:
                state = "scheduled"
            if state not in ("scheduled", "cancelled"):
                opened = _local(window.opens, 6)
                last_day = min(today, window.closes)
                if state == "completed":
                    done_day = window.opens + timedelta(
                        days=rng.randrange(0, (last_day - window.opens).days + 1)
                    )
                    completed = closed = started = _local(done_day, 14)
                elif state == "in_progress":
                    started = opened + timedelta(hours=9)
                elif state == "expired":
                    closed = _local(window.closes + timedelta(days=1), 1)
            assessment_id = tables.add(
                "assessments",
                patient_id,
                tp.key,
                tp.anchor,
                window.due,
                window.opens,
                window.closes,
                instruments,
                state,
                None,
                None,
                language if state == "completed" else None,
                opened,
                started,
                completed,
                closed,
                now,
                now,
                opened,
                None,
            )
            if opened is None or opted_out:
                continue
            end = min(today, window.closes) if completed is None else completed.date()
            sends = [("invitation", window.opens)]
            sends += [
                ("reminder", window.opens + timedelta(days=d))
                for d in tp.reminder_days
                if window.opens + timedelta(days=d) <= end
            ]
            for kind, day in sends:
                at = _local(day, 9)
                r = rng.random()
                if phone_invalid:
                    status_ = "failed"
                else:
                    status_ = (
                        "delivered"
                        if r < 0.9
                        else "sent"
                        if r < 0.95
                        else "undelivered"
                        if r < 0.98
                        else "failed"
                    )
                tables.add(
                    "outbox_messages",
                    patient_id,
                    assessment_id,
                    kind,
                    language,
                    at,
                    status_,
                    at,
                    "bench",
                    at,
                    None,
                    status_,
                    1,
                    None,
                    "30008" if status_ in ("failed", "undelivered") else None,
                    None,
                    at,
                    at,
                )
            if completed is not None and rng.random() < 0.3:  # a reminder cancelled on completion
                tables.add(
                    "outbox_messages",
                    patient_id,
                    assessment_id,
                    "reminder",
                    language,
                    completed,
                    "cancelled",
                    None,
                    None,
                    None,
                    None,
                    None,
                    0,
                    None,
                    None,
                    "time point completed",
                    completed,
                    completed,
                )
            elif completed is None and state != "expired" and rng.random() < 0.2:
                at = now + timedelta(hours=2)  # the next reminder, waiting for its time
                tables.add(
                    "outbox_messages",
                    patient_id,
                    assessment_id,
                    "reminder",
                    language,
                    at,
                    "pending",
                    *([None] * 5),
                    0,
                    None,
                    None,
                    None,
                    now,
                    now,
                )


def seed(url: str, patients: int) -> dict[str, object]:
    """Schema, two sites, a nurse, and the bulk-loaded patients. Returns ids for the run."""
    import psycopg

    from pro_service import create_app, migrate
    from pro_service.audit import Actor
    from pro_service.clock import utcnow
    from pro_service.db import make_engine
    from pro_service.extensions import db
    from pro_service.scheduling.assessments import local_today
    from pro_service.staff.accounts import create_site, create_user

    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    app = create_app({"database_url": url, "env": "test"})
    now = utcnow()
    with app.app_context():
        session, actor = db.session, Actor.operator("bench")
        sites = [
            create_site(
                session,
                now=now,
                actor=actor,
                code=code,
                name=name,
                country="SE",
                time_zone=ZONE,
                default_language="sv",
            )
            for code, name in (("SE-BEN", "Bench"), ("SE-OTH", "Other"))
        ]
        create_user(
            session,
            now=now,
            actor=actor,
            email=NURSE,
            password=PASSWORD,
            role="nurse",
            sites=[sites[0]],
            all_sites=False,
            language="en",
        )
        session.commit()
        site_ids = [s.id for s in sites]
        today = local_today(sites[0], now)
    schedule = app.extensions["schedule"]
    app.extensions["pro_db"]["engine"].dispose()

    started = time.perf_counter()
    tables = Tables()
    for site_id, prefix, count in (
        (site_ids[0], "BEN", patients),
        (site_ids[1], "OTH", patients // 5),
    ):
        add_site_patients(
            tables, schedule, site_id=site_id, prefix=prefix, count=count, today=today, now=now
        )
    with psycopg.connect(_psycopg_url(url)) as conn:
        with conn.cursor() as cur:
            for table, columns in Tables.COLUMNS.items():
                with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    copy.write(tables.buffers[table].getvalue())
                cur.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {tables.ids[table]})"
                )
            with cur.copy(
                f"COPY patient_anchor_dates ({Tables.ANCHOR_COLUMNS}) FROM STDIN"
            ) as copy:
                copy.write(tables.anchors.getvalue())
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
        mix = dict(
            conn.execute(
                "SELECT a.status, count(*) FROM assessments a JOIN patients p "
                "ON p.id = a.patient_id WHERE p.site_id = %s GROUP BY 1 ORDER BY 1",
                (site_ids[0],),
            ).fetchall()
        )
        first_patient = conn.execute(
            "SELECT id FROM patients WHERE site_id = %s ORDER BY study_id LIMIT 1",
            (site_ids[0],),
        ).fetchone()[0]
    took = time.perf_counter() - started
    print(
        f"loaded {tables.ids['patients']:,} patients, {tables.ids['assessments']:,} time points, "
        f"{tables.ids['outbox_messages']:,} messages in {took:.1f} s"
    )
    print("site time points by stored status: " + ", ".join(f"{k} {v}" for k, v in mix.items()))
    return {"site": site_ids[0], "today": today, "first_patient": first_patient}


# --- Measuring --------------------------------------------------------------------------------


class PlainSql:
    """The plain SQL returning the board page's rows and counts, straight through psycopg."""

    def __init__(self, url: str, ids: dict[str, object]) -> None:
        import psycopg

        self.conn = psycopg.connect(_psycopg_url(url))
        self.params: dict[str, object] = {"site": ids["site"], "today": ids["today"]}

    def run(self) -> float:
        started = time.perf_counter()
        with self.conn.cursor() as cur:
            total = cur.execute(PLAIN_TOTAL, self.params).fetchone()
            page = cur.execute(PLAIN_PAGE, self.params).fetchall()
            page_ids = [row[0] for row in page]
            cur.execute(PLAIN_ASSESSMENTS, {**self.params, "ids": page_ids}).fetchall()
            cur.execute(PLAIN_MESSAGES, {**self.params, "ids": page_ids}).fetchall()
            cur.execute(PLAIN_COUNTS, self.params).fetchall()
        self.conn.rollback()
        elapsed = time.perf_counter() - started
        assert total is not None and len(page) == 50
        return elapsed


def measure(url: str, ids: dict[str, object], runs: int) -> dict[str, dict[str, float]]:
    """Each page N times; the board's runs alternate with runs of its plain SQL, so that both
    see the same machine load."""
    from pro_service import create_app

    app = create_app({"database_url": url, "env": "test", "log_level": "WARNING"})
    engine = app.extensions["pro_db"]["engine"]
    client = app.test_client()
    login = client.get("/staff/login?lang=en")
    token = CSRF.search(login.text)
    signed = client.post(
        "/staff/login",
        data={"email": NURSE, "password": PASSWORD, "csrf_token": token.group(1) if token else ""},
    )
    assert signed.status_code == 302, signed.text
    plain = PlainSql(url, ids)

    statements: list[float] = []
    in_sql = [0.0]

    def before(conn, _cursor, _statement, _parameters, context, _many):  # type: ignore[no-untyped-def]
        conn.info["bench_started"] = time.perf_counter()

    def after(conn, _cursor, _statement, _parameters, context, _many):  # type: ignore[no-untyped-def]
        statements.append(1.0)
        in_sql[0] += time.perf_counter() - conn.info.pop("bench_started")

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    pages = {"board first page": f"/staff/board?site={ids['site']}"}
    if "staff.patient" in app.view_functions:
        pages["patient page"] = f"/staff/patients/{ids['first_patient']}"
    else:
        print("patient page: skipped (no staff.patient endpoint in this build)")
    results = {}
    for name, path in pages.items():
        for _ in range(3):  # warm-up
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code)
            plain.run()
        times, counts, sql_times, plain_times = [], [], [], []
        size = 0
        for _ in range(runs):
            statements.clear()
            in_sql[0] = 0.0
            started = time.perf_counter()
            response = client.get(path)
            times.append(time.perf_counter() - started)
            assert response.status_code == 200
            size = len(response.data)
            counts.append(len(statements))
            sql_times.append(in_sql[0])
            if name == "board first page":
                plain_times.append(plain.run())
        results[name] = {
            "median_ms": statistics.median(times) * 1000,
            "min_ms": min(times) * 1000,
            "queries": statistics.median(counts),
            "queries_max": max(counts),
            "sql_ms": statistics.median(sql_times) * 1000,
            "bytes": size,
        }
        if plain_times:
            results["plain SQL"] = {
                "median_ms": statistics.median(plain_times) * 1000,
                "min_ms": min(plain_times) * 1000,
            }
    plain.conn.close()
    engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--patients", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    options = parser.parse_args()
    url = create_database()
    try:
        ids = seed(url, options.patients)
        pages = measure(url, ids, options.runs)
    finally:
        if options.keep:
            print(f"kept database {make_url(url).database}")
        else:
            drop_database(url)
    print(f"Flask test client, PostgreSQL, median of {options.runs} runs")
    plain = pages.pop("plain SQL")
    for name, r in pages.items():
        print(
            f"{name}: {r['median_ms']:.1f} ms (min {r['min_ms']:.1f}), "
            f"{r['queries']:.0f} SQL statements per request (max {r['queries_max']:.0f}), "
            f"{r['sql_ms']:.1f} ms inside them, {r['bytes']:,} bytes"
        )
    print(
        f"plain SQL of the board page's rows and counts (psycopg): {plain['median_ms']:.1f} ms "
        f"(min {plain['min_ms']:.1f})"
    )
    ratio = pages["board first page"]["median_ms"] / plain["median_ms"]
    print(f"ratio board page / plain SQL: {ratio:.2f}x (target <= 3x)")


if __name__ == "__main__":
    main()
