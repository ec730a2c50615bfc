"""Benchmark of the compliance report on PostgreSQL: a site of 5,000 patients (and one of 1,000).

Not a test (run by ``make bench-compliance``). Loads the same realistic study as the board
benchmark (``bench_board.seed``: every time point the schedule gives each patient, in a mix of
states, in a database of its own at PRO_TEST_POSTGRES_URL or ``--database-url``), then measures,
each run alternating with its baseline so that both see the same machine load:

- the compliance page (``/staff/compliance``) with the Flask test client, signed in as the big
  site's nurse: the report, the chart and the tables;
- the report alone (``compliance_report``, what ``pro-service compliance`` writes);
- the plain SQL that counts the same rows (patients per site and status; time points per site,
  patient status, time point, status and missing reason), straight through psycopg: the
  database's share.

Target: page / plain SQL at most 3x.

    .venv/bin/python bench/bench_compliance.py [--patients 5000] [--runs 30] [--keep]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_board  # noqa: E402  (the same study, loaded the same way)

PLAIN_PATIENTS = """
SELECT site_id, status, count(*) FROM patients WHERE site_id = %(site)s GROUP BY 1, 2
"""
PLAIN_COUNTS = """
SELECT p.site_id, p.status, a.timepoint, a.status, a.missing_reason, count(*)
FROM assessments a JOIN patients p ON p.id = a.patient_id
WHERE p.site_id = %(site)s
GROUP BY 1, 2, 3, 4, 5
"""


def measure(url: str, ids: dict[str, object], runs: int) -> dict[str, list[float]]:
    import psycopg

    from pro_service import create_app
    from pro_service.compliance import compliance_report
    from pro_service.extensions import db

    app = create_app({"database_url": url, "env": "test", "log_level": "WARNING"})
    client = app.test_client()
    login = client.get("/staff/login?lang=en")
    token = bench_board.CSRF.search(login.text)
    signed = client.post(
        "/staff/login",
        data={
            "email": bench_board.NURSE,
            "password": bench_board.PASSWORD,
            "csrf_token": token.group(1) if token else "",
        },
    )
    assert signed.status_code == 302, signed.text
    conn = psycopg.connect(bench_board._psycopg_url(url))
    params = {"site": ids["site"]}
    schedule = app.extensions["schedule"]
    reasons = app.extensions["missing_reasons"].codes
    site_ids = frozenset({int(str(ids["site"]))})

    def plain() -> float:
        started = time.perf_counter()
        with conn.cursor() as cur:
            cur.execute(PLAIN_PATIENTS, params).fetchall()
            rows = cur.execute(PLAIN_COUNTS, params).fetchall()
        conn.rollback()
        assert rows
        return time.perf_counter() - started

    def page() -> float:
        started = time.perf_counter()
        response = client.get("/staff/compliance")
        assert response.status_code == 200 and b"Completion rate" in response.data
        return time.perf_counter() - started

    def report() -> float:
        with app.app_context():
            started = time.perf_counter()
            compliance_report(
                db.session,
                schedule=schedule,
                reasons=reasons,
                site_ids=site_ids,
            )
            took = time.perf_counter() - started
            db.session.rollback()
        return took

    for _ in range(3):  # warm-up
        page(), report(), plain()
    times: dict[str, list[float]] = {"page": [], "report": [], "plain": []}
    for _ in range(runs):
        times["page"].append(page())
        times["plain"].append(plain())
        times["report"].append(report())
    conn.close()
    app.extensions["pro_db"]["engine"].dispose()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--patients", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--database-url", help="PostgreSQL server to create the database on (default: as tests)"
    )
    options = parser.parse_args()
    if options.database_url:
        bench_board.ADMIN_URL = options.database_url
    url = bench_board.create_database()
    try:
        ids = bench_board.seed(url, options.patients)
        times = measure(url, ids, options.runs)
    finally:
        if options.keep:
            print(f"kept database {make_url(url).database}")
        else:
            bench_board.drop_database(url)
    median = {name: statistics.median(values) * 1000 for name, values in times.items()}
    print(f"PostgreSQL, {options.patients:,} patients at the site, median of {options.runs} runs")
    for name, label in (
        ("page", "compliance page (Flask test client)"),
        ("report", "compliance_report alone"),
        ("plain", "plain SQL counting the same rows (psycopg)"),
    ):
        print(f"{label}: {median[name]:.1f} ms (min {min(times[name]) * 1000:.1f})")
    print(f"ratio page / plain SQL: {median['page'] / median['plain']:.2f}x (target <= 3x)")
    print(f"ratio report / plain SQL: {median['report'] / median['plain']:.2f}x")


if __name__ == "__main__":
    main()
