"""Where a questionnaire screen costs more than the floor route, piece by piece.

``bench_patient.py`` measures whole pages under gunicorn. This breaks the difference down, on
the same bench app, floor route and PostgreSQL set-up:

* **In-process CPU per request** of a screen GET and of a screen POST (new answers every time,
  so every POST writes), questionnaire against floor, through Flask's test client (no HTTP
  server, no other process): the cost of the app's own Python per request. Rounds alternate
  the four kinds; the best and the median round are reported. Then the same for a whole
  questionnaire, welcome to thank-you with scoring (34 requests, a new patient each time),
  against the floor's same requests, as ``bench_patient.py``'s completion phase runs them.
* **PostgreSQL backend CPU per statement**, read from ``/proc`` for the backend serving the
  bench's connection (Linux only), each statement run as a page runs it: the reads in autocommit
  mode, the write with its commit. The link lookup (assessment, patient and site) against the
  floor's SELECT of the assessment; the stored answers against the floor's; storing a screen's
  answers with the UPDATE that marks the assessment started (and makes a completion committing
  meanwhile refuse them) against the floor's upsert. The clock ticks every 10 ms, so each
  figure is a run of many statements; the best of three runs is reported, all three beside it.

    .venv/bin/python bench/bench_patient_parts.py [--rounds 8] [--postgres-url URL]

Run with ``make bench-patient-parts``. Not a test; pytest does not collect it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench_patient import (
    ADMIN_URL,
    FLOOR_ANSWERS,
    FLOOR_FIND,
    FLOOR_UPSERT,
    FLOWS_PER_ROUND,
    _form,
    bench_app,
    create_database,
    drop_database,
    floor_flow,
    product_flow,
    seed,
)
from flask.testing import FlaskClient
from sqlalchemy import text

#: Requests per kind and round (in-process), statements per run (PostgreSQL).
REQUESTS_PER_ROUND = 200
STATEMENTS_PER_RUN = 5000
SCREEN = 3


def per_call(call: Callable[[int], object], count: int, clock: Callable[[], float]) -> float:
    """Microseconds of ``clock`` per call of ``call(i)``, i = 0..count-1."""
    started = clock()
    for i in range(count):
        call(i)
    return (clock() - started) / count * 1e6


def in_process(token: str, rounds: int) -> dict[str, list[float]]:
    """CPU per request of each kind, one figure per round."""
    app = bench_app()
    client = app.test_client()
    product_url, floor_url = f"/q/{token}/s/{SCREEN}", f"/bench/floor/{token}/s/{SCREEN}"
    pages = {url: client.get(url).get_data(as_text=True) for url in (product_url, floor_url)}
    counter = [0]

    def get(url: str) -> Callable[[int], object]:
        def call(_i: int) -> None:
            status = client.get(url).status_code
            if status != 200:
                raise SystemExit(f"GET {url}: {status}")

        return call

    def post(url: str) -> Callable[[int], object]:
        def call(_i: int) -> None:
            counter[0] += 1  # new answers every time: every POST writes
            body = _form(pages[url], {"screen": str(SCREEN), "nav": "next"}, counter[0])
            response = client.post(url, data=body, content_type="application/x-www-form-urlencoded")
            if response.status_code != 303:
                raise SystemExit(f"POST {url}: {response.status_code}")

        return call

    kinds = {
        "screen GET, questionnaire": get(product_url),
        "screen GET, floor": get(floor_url),
        "screen POST, questionnaire": post(product_url),
        "screen POST, floor": post(floor_url),
    }
    for call in kinds.values():  # warm up: compiled templates, kept HTML, prepared statements
        per_call(call, 50, time.process_time)
    results: dict[str, list[float]] = {name: [] for name in kinds}
    for _round in range(rounds):
        for name, call in kinds.items():
            results[name].append(per_call(call, REQUESTS_PER_ROUND, time.process_time))
    app.extensions["pro_db"]["engine"].dispose()
    return results


@dataclass
class InProcessClient:
    """The bench client's ``expect``, on Flask's test client (its cookies kept between calls)."""

    client: FlaskClient

    def expect(self, method: str, path: str, status: int, body: str | None = None) -> str | None:
        response = self.client.open(
            path, method=method, data=body, content_type="application/x-www-form-urlencoded"
        )
        if response.status_code != status:
            raise SystemExit(f"{method} {path}: {response.status_code}, not {status}")
        return response.get_data(as_text=True)


def whole_questionnaires(
    floor_token: str, tokens: list[str], rounds: int
) -> dict[str, list[float]]:
    """CPU per whole questionnaire in-process: ``FLOWS_PER_ROUND`` per kind and round, a new
    link of ``tokens`` for each of the questionnaire's, the floor on ``floor_token`` every time
    (as ``bench_patient.py`` runs them)."""
    app = bench_app()
    results: dict[str, list[float]] = {"questionnaire": [], "floor": []}
    links = iter(tokens)

    def product(_i: int) -> None:
        product_flow(InProcessClient(app.test_client()), next(links))

    def floor(_i: int) -> None:
        floor_flow(InProcessClient(app.test_client()), floor_token)

    per_call(product, 1, time.process_time)  # warm up
    per_call(floor, 1, time.process_time)
    for _round in range(rounds):
        results["questionnaire"].append(per_call(product, FLOWS_PER_ROUND, time.process_time))
        results["floor"].append(per_call(floor, FLOWS_PER_ROUND, time.process_time))
    app.extensions["pro_db"]["engine"].dispose()
    return {name: [value / 1000 for value in values] for name, values in results.items()}


def backend_cpu(pid: int) -> float:
    """Seconds of CPU (user + system) the PostgreSQL backend ``pid`` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_statements(url: str, token: str) -> dict[str, list[float]]:
    """PostgreSQL CPU per statement of each kind, one figure per run."""
    from pro_service import create_app
    from pro_service.answering import questionnaire, responses
    from pro_service.clock import utcnow
    from pro_service.crypto import hash_token
    from pro_service.db import make_engine

    app = create_app()
    engine = make_engine(url)
    find, answers, upsert = text(FLOOR_FIND), text(FLOOR_ANSWERS), text(FLOOR_UPSERT)
    results: dict[str, list[float]] = {}
    with app.app_context(), engine.connect() as connection:
        pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        connection.commit()
        link = questionnaire.open_link(connection, token=token)
        if link is None:
            raise SystemExit("the seeded link was not found")
        connection.commit()
        flow = questionnaire.flow_for(link, app.extensions["instruments"])
        screen = flow.screen(SCREEN)
        if screen is None:
            raise SystemExit(f"the questionnaire has no screen {SCREEN}")
        instrument, items = screen.instrument, screen.items

        def codes(i: int) -> list[int]:
            return [1 + (item + i) % 4 for item in items]

        def store(i: int) -> None:
            responses.store_answers_taken(
                connection,
                now=utcnow(),
                assessment_id=link.assessment_id,
                instrument=instrument,
                language="sv",
                answers=dict(zip(items, codes(i), strict=True)),
            )
            connection.commit()

        def floor_store(i: int) -> None:
            parameters = {
                "id": link.assessment_id,
                "instrument": instrument.id,
                "version": instrument.version,
                "items": list(items),
                "codes": codes(i),
            }
            connection.execute(upsert, parameters)
            connection.commit()

        # The same connection (and backend), in autocommit mode for the reads, as pages read.
        isolation = connection.default_isolation_level
        reads = connection.execution_options(isolation_level="AUTOCOMMIT")
        kinds: dict[str, Callable[[int], object]] = {
            "link lookup (assessment, patient, site)": lambda _i: questionnaire.open_link(
                reads, token=token
            ),
            "link lookup, floor (assessment)": lambda _i: reads.execute(
                find, {"hash": hash_token(token)}
            ).one(),
            "stored answers": lambda _i: responses.stored_answers(reads, link.assessment_id),
            "stored answers, floor": lambda _i: reads.execute(
                answers, {"id": link.assessment_id}
            ).all(),
        }
        for name, call in kinds.items():
            results[name] = run_statements(call, pid)
        reads.commit()  # ends SQLAlchemy's own transaction object, nothing on the server
        connection.execution_options(isolation_level=isolation)
        results["store a screen's answers, mark started, commit"] = run_statements(store, pid)
        results["store a screen's answers, floor upsert, commit"] = run_statements(floor_store, pid)
    engine.dispose()
    app.extensions["pro_db"]["engine"].dispose()
    return results


def run_statements(call: Callable[[int], object], pid: int) -> list[float]:
    per_call(call, 100, time.perf_counter)  # prepared on the server after a few runs
    return [per_call(call, STATEMENTS_PER_RUN, lambda: backend_cpu(pid)) for _run in range(3)]


def report(title: str, results: dict[str, list[float]], unit: str) -> None:
    print(title)
    names = list(results)
    for product, floor in zip(names[::2], names[1::2], strict=True):
        best_p, best_f = min(results[product]), min(results[floor])
        median_p, median_f = statistics.median(results[product]), statistics.median(results[floor])
        digits = 1 if unit == "ms" else 0
        print(
            f"  {product}: {best_p:.{digits}f} {unit} (median {median_p:.{digits}f}); "
            f"{floor}: {best_f:.{digits}f} {unit} (median {median_f:.{digits}f}); "
            f"more by {best_p - best_f:.{digits}f} {unit}, floor / questionnaire "
            f"{best_f / best_p:.2f}"
        )


def report_runs(title: str, results: dict[str, list[float]]) -> None:
    print(title)
    names = list(results)
    for product, floor in zip(names[::2], names[1::2], strict=True):
        for name in (product, floor):
            runs = ", ".join(f"{value:.0f}" for value in results[name])
            print(f"  {name}: {min(results[name]):.0f} µs (runs {runs})")
        print(f"    more by {min(results[product]) - min(results[floor]):.0f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--postgres-url", default=ADMIN_URL)
    args = parser.parse_args()

    url = create_database(args.postgres_url)
    try:
        os.environ.update(
            {
                "PRO_DATABASE_URL": url,
                "PRO_ENV": "test",
                "PRO_LOG_LEVEL": "WARNING",
                "PRO_LINK_RATE_LIMIT": "100000000",
            }
        )
        pages_token, statements_token, floor_token, *flow_tokens = seed(
            url, 3 + FLOWS_PER_ROUND * (args.rounds + 1)
        )
        requests = in_process(pages_token, args.rounds)
        flows = whole_questionnaires(floor_token, flow_tokens, args.rounds)
        statements = postgres_statements(url, statements_token)
    finally:
        drop_database(args.postgres_url, url)
    report(
        f"In-process CPU per request, best of {args.rounds} rounds of {REQUESTS_PER_ROUND}:",
        requests,
        "µs",
    )
    report(
        f"In-process CPU per whole questionnaire (34 requests), best of {args.rounds} rounds of "
        f"{FLOWS_PER_ROUND}:",
        flows,
        "ms",
    )
    report_runs(
        f"PostgreSQL backend CPU per statement, best of 3 runs of {STATEMENTS_PER_RUN}:",
        statements,
    )


if __name__ == "__main__":
    main()
