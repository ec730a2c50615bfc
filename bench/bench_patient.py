"""Benchmark of the patient questionnaire pages under gunicorn (2 workers) on PostgreSQL.

One gunicorn serves a bench-only app: the product app plus a bare route (``/bench/bare``) that
returns a page of the same size as a questionnaire screen, so both are measured by the same
server, workers and database in the same run. 16 client threads then

* drive the questionnaire: GET a screen, POST its answers (each thread its own patient),
* GET the bare route,
* GET the floor route: what any such page costs at the least on this stack (see ``_floor_view``),
* GET questionnaire screens only, the reading half of the questionnaire,

and the script reports requests/s for each, the ratios to the bare route, the latency
percentiles and the CPU time per request spent by gunicorn, PostgreSQL and this client.
Targets: questionnaire throughput at least a third of the bare route's; p95 under 100 ms.

Run with ``make bench-patient`` (PostgreSQL at PRO_TEST_POSTGRES_URL, as for the tests).
Everything stays on 127.0.0.1; the run is bounded in requests and time and stops by itself.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get(
    "PRO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
CONCURRENCY = 16
WORKERS = 2
#: Threads per gunicorn worker (gthread): a worker waiting for a commit serves other requests.
THREADS = os.environ.get("PRO_BENCH_THREADS", "2")
#: GET + POST pairs per client thread (4,800 questionnaire requests: long enough that a few
#: slow seconds on a shared machine move the figures by a few per cent, not by a fifth).
PAIRS_PER_THREAD = int(os.environ.get("PRO_BENCH_PAIRS", "150"))
BARE_PER_THREAD = 2 * PAIRS_PER_THREAD  # the same number of requests against the bare route
TIME_LIMIT_SECONDS = 120
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
RADIO = re.compile(r'name="q(\d+)" value="(\d+)"')


# --------------------------------------------------------------------------------------------
# The bench-only app (imported by gunicorn from this file)


def bench_app():  # type: ignore[no-untyped-def]
    """The product app plus a bare route returning ``PRO_BENCH_PAGE_BYTES`` bytes of HTML."""
    from pro_service import create_app

    app = create_app()
    size = int(os.environ.get("PRO_BENCH_PAGE_BYTES", "8000"))
    page = ("<!doctype html><html lang='en'><title>bare</title><p>" + "x" * size)[:size]

    def bare() -> tuple[str, int, dict[str, str]]:
        return page, 200, {"Content-Type": "text/html; charset=utf-8"}

    app.add_url_rule("/bench/bare", "bench_bare", bare)
    app.add_url_rule("/bench/floor/<token>", "bench_floor", _floor_view(app, size))
    return app


#: The floor page: as many radio buttons as a five-item screen, padded to the screen's size.
FLOOR_TEMPLATE = """<!doctype html><html lang="{{ lang }}"><title>floor</title>
<form method="post"><input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
{% for item in items %}<fieldset><legend>{{ item }}. {{ texts[item] }}</legend>
{% for code in codes %}<label><input type="radio" name="q{{ item }}" value="{{ code }}"
{% if answers.get(item) == code %} checked{% endif %}> {{ labels[code] }}</label>
{% endfor %}</fieldset>{% endfor %}<button>Next</button></form><p>{{ padding }}</p>"""


def _floor_view(app, size: int):  # type: ignore[no-untyped-def]
    """What any questionnaire page must do at the least, with the same Flask, database and pool.

    Two indexed SELECTs with SQLAlchemy Core (the link by its hash, then the stored answers),
    a value kept in the signed session cookie, a CSRF token and a Jinja page of the same size.
    No ORM, no rate limit, no Babel, no writes: the stack's own cost of such a page, so the
    questionnaire's figure can be read against what the same stack can do at best.
    """
    from flask import session
    from sqlalchemy import text as sql

    from pro_service.crypto import hash_token
    from pro_service.extensions import db

    template = app.jinja_env.from_string(FLOOR_TEMPLATE)
    items = [1, 2, 3, 4, 5]
    texts = {n: "Paraphrased item text of about this length" for n in items}
    labels = {1: "Not at all", 2: "A little", 3: "Quite a bit", 4: "Very much"}
    empty = template.render(
        lang="sv",
        items=items,
        codes=[1, 2, 3, 4],
        texts=texts,
        labels=labels,
        answers={},
        padding="",
        csrf_token=lambda: "x" * 91,
    )
    padding = "x" * max(0, size - len(empty.encode()))
    find = sql("SELECT id, status FROM assessments WHERE token_hash = :hash")
    answers = sql("SELECT item_number, code FROM responses WHERE assessment_id = :id")

    def floor(token: str) -> str:
        with db.engine.connect() as connection:
            found = connection.execute(find, {"hash": hash_token(token)}).one()
            stored = {item: code for item, code in connection.execute(answers, {"id": found.id})}
        session["language"] = "sv"
        return template.render(
            lang="sv",
            items=items,
            codes=[1, 2, 3, 4],
            texts=texts,
            labels=labels,
            answers=stored,
            padding=padding,
        )

    return floor


# --------------------------------------------------------------------------------------------
# Setting up: a database with one open assessment per client thread


def create_database() -> str:
    name = f"pro_bench_patient_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    name = make_url(url).database
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": name},
        )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def seed(url: str, count: int) -> list[str]:
    from pro_service import create_app, migrate
    from pro_service.audit import Actor
    from pro_service.clock import utcnow
    from pro_service.db import make_engine
    from pro_service.extensions import db
    from pro_service.patients.registry import register_patient
    from pro_service.scheduling.assessments import current_token, local_today, update_windows
    from pro_service.staff.accounts import create_site

    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    app = create_app({"database_url": url, "env": "test"})
    tokens = []
    with app.app_context():
        session, now, actor = db.session, utcnow(), Actor.operator("bench")
        site = create_site(
            session,
            now=now,
            actor=actor,
            code="BENCH",
            name="Bench",
            country="SE",
            time_zone="Europe/Stockholm",
            default_language="sv",
        )
        patients = [
            register_patient(
                session,
                now=now,
                actor=actor,
                vault=app.extensions["vault"],
                schedule=app.extensions["schedule"],
                site=site,
                study_id=f"B-{i:03d}",
                phone=None,
                language="sv",
                inclusion_date=local_today(site, now),
            )
            for i in range(count)
        ]
        update_windows(session, now=now, vault=app.extensions["vault"])
        for patient in patients:
            baseline = next(a for a in patient.assessments if a.timepoint == "baseline")
            tokens.append(current_token(baseline, app.extensions["vault"]))
        session.commit()
    app.extensions["pro_db"]["engine"].dispose()
    return [t for t in tokens if t]


# --------------------------------------------------------------------------------------------
# The client


@dataclass
class Client:
    port: int
    cookie: str = ""
    latencies: list[float] = field(default_factory=list)
    by_method: dict[str, list[float]] = field(default_factory=lambda: {"GET": [], "POST": []})
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, str]:
        headers = {"Cookie": self.cookie} if self.cookie else {}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        started = time.perf_counter()
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
            data = response.read().decode()
        except (http.client.HTTPException, OSError):
            # gunicorn's sync workers close the connection after each response: reconnect once.
            self.conn.close()
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
            data = response.read().decode()
        elapsed = time.perf_counter() - started
        self.latencies.append(elapsed)
        self.by_method[method].append(elapsed)
        set_cookie = response.getheader("Set-Cookie")
        if set_cookie:
            self.cookie = set_cookie.split(";", 1)[0]
        return response.status, data


def drive_questionnaire(client: Client, token: str, pairs: int, deadline: float) -> None:
    screen = 1
    for round_ in range(pairs):
        if time.monotonic() > deadline:
            return
        status, html = client.request("GET", f"/q/{token}/s/{screen}")
        if status != 200:
            client.errors.append(f"GET screen {screen}: {status}")
            return
        csrf = CSRF.search(html)
        items = sorted({int(n) for n, _ in RADIO.findall(html)})
        form = {"csrf_token": csrf.group(1) if csrf else "", "screen": str(screen), "nav": "next"}
        # Different answers each round, so every POST really writes (as a first visit does).
        form.update({f"q{n}": str(1 + (n + round_) % 4) for n in items})
        status, _ = client.request("POST", f"/q/{token}/s/{screen}", urllib.parse.urlencode(form))
        if status != 303:
            client.errors.append(f"POST screen {screen}: {status}")
            return
        screen = screen % 15 + 1


def drive_page(client: Client, path: str, count: int, deadline: float) -> None:
    """GET ``path`` ``count`` times (the bare and the floor route)."""
    for _ in range(count):
        if time.monotonic() > deadline:
            return
        status, _ = client.request("GET", path)
        if status != 200:
            client.errors.append(f"{path}: {status}")
            return


def cpu_seconds() -> dict[str, float]:
    """CPU time used so far (user + system), by who used it: the gunicorn processes, the
    PostgreSQL server processes and this client. Linux only (``/proc``); empty elsewhere."""
    tick = os.sysconf("SC_CLK_TCK")
    used = {"gunicorn": 0.0, "postgresql": 0.0}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue  # the process ended meanwhile
        fields = raw[raw.rindex(")") + 2 :].split()
        seconds = (int(fields[11]) + int(fields[12])) / tick
        if b"bench_patient:bench_app" in cmdline:
            used["gunicorn"] += seconds
        elif cmdline.startswith(b"postgres"):
            used["postgresql"] += seconds
    times = os.times()
    used["client"] = times.user + times.system
    return used


def run_phase(name: str, clients: list[Client], target) -> dict[str, float]:  # type: ignore[no-untyped-def]
    for client in clients:
        client.latencies.clear()
        for values in client.by_method.values():
            values.clear()
    deadline = time.monotonic() + TIME_LIMIT_SECONDS
    threads = [
        threading.Thread(target=target, args=(c, i, deadline)) for i, c in enumerate(clients)
    ]
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    cpu_after = cpu_seconds()
    latencies = sorted(x for c in clients for x in c.latencies)
    errors = [e for c in clients for e in c.errors]
    if errors:
        raise SystemExit(f"{name}: {len(errors)} failed requests, e.g. {errors[:3]}")
    q = statistics.quantiles(latencies, n=100)
    per_method = {}
    for method in ("GET", "POST"):
        values = [x for c in clients for x in c.by_method[method]]
        if len(values) > 1:
            per_method[f"{method}_p95_ms"] = statistics.quantiles(values, n=100)[94] * 1000
    cpu = {
        f"cpu_ms_{who}": (cpu_after[who] - cpu_before[who]) * 1000 / len(latencies)
        for who in cpu_after
    }
    return {
        **per_method,
        **cpu,
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": q[49] * 1000,
        "p95_ms": q[94] * 1000,
        "p99_ms": q[98] * 1000,
    }


def gunicorn_command(port: int) -> list[str]:
    """gunicorn as the README runs it in production: gthread workers, each taking at most its
    share of the connections.

    A gthread worker keeps a keep-alive connection for good once it has accepted it, so without
    ``--worker-connections`` one worker took all 16 clients and the other stayed idle (seen
    here: one worker at 0% CPU for a whole run; 137 instead of 182 questionnaire requests/s).
    """
    return [
        str(Path(sys.executable).parent / "gunicorn"),
        "--workers",
        str(WORKERS),
        "--threads",
        THREADS,
        "--worker-connections",
        str(CONCURRENCY // WORKERS),
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "bench_patient:bench_app()",
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(port: int, process: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if process.poll() is not None:
            raise SystemExit("gunicorn stopped while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("gunicorn did not start")


def main() -> None:
    url = create_database()
    process = None
    try:
        tokens = seed(url, CONCURRENCY)
        port = free_port()
        env = {
            **os.environ,
            "PRO_DATABASE_URL": url,
            "PRO_ENV": "test",
            "PRO_LOG_LEVEL": "WARNING",
            "PRO_LINK_RATE_LIMIT": "100000000",
            "PYTHONPATH": str(ROOT / "bench"),
        }
        # Size of a questionnaire screen, for the bare page.
        probe = None
        process = subprocess.Popen(  # noqa: S603
            gunicorn_command(port),
            cwd=ROOT,
            env={**env, "PRO_BENCH_PAGE_BYTES": os.environ.get("PRO_BENCH_PAGE_BYTES", "0")},
        )
        wait_for(port, process)
        probe = Client(port)
        status, html = probe.request("GET", f"/q/{tokens[0]}/s/1")
        assert status == 200, status
        page_bytes = len(html.encode())
        process.terminate()
        process.wait(timeout=30)

        process = subprocess.Popen(  # noqa: S603
            gunicorn_command(port),
            cwd=ROOT,
            env={**env, "PRO_BENCH_PAGE_BYTES": str(page_bytes)},
        )
        wait_for(port, process)
        clients = [Client(port) for _ in tokens]
        bare_size = len(clients[0].request("GET", "/bench/bare")[1].encode())
        # Warm up both paths in every worker.
        run_phase("warm-up", clients, lambda c, i, d: drive_questionnaire(c, tokens[i], 2, d))
        run_phase("warm-up", clients, lambda c, i, d: drive_page(c, "/bench/bare", 4, d))
        run_phase(
            "warm-up", clients, lambda c, i, d: drive_page(c, f"/bench/floor/{tokens[i]}", 4, d)
        )

        questionnaire = run_phase(
            "questionnaire",
            clients,
            lambda c, i, d: drive_questionnaire(c, tokens[i], PAIRS_PER_THREAD, d),
        )
        bare = run_phase(
            "bare", clients, lambda c, i, d: drive_page(c, "/bench/bare", BARE_PER_THREAD, d)
        )
        floor = run_phase(
            "floor",
            clients,
            lambda c, i, d: drive_page(c, f"/bench/floor/{tokens[i]}", BARE_PER_THREAD, d),
        )
        # The questionnaire's reading half alone: the same screens, GET only (no answers sent).
        screens_only = run_phase(
            "screens only",
            clients,
            lambda c, i, d: drive_page(c, f"/q/{tokens[i]}/s/{1 + i % 15}", BARE_PER_THREAD, d),
        )
        floor_size = len(clients[0].request("GET", f"/bench/floor/{tokens[0]}")[1].encode())
    finally:
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(timeout=30)
        drop_database(url)

    ratio = questionnaire["rps"] / bare["rps"]
    print(
        f"gunicorn {WORKERS} workers x {THREADS} threads, at most {CONCURRENCY // WORKERS} "
        f"connections each, PostgreSQL, concurrency {CONCURRENCY}"
    )
    print(
        f"page size: questionnaire screen {page_bytes} bytes, bare route {bare_size} bytes, "
        f"floor route {floor_size} bytes"
    )
    for name, result in (
        ("questionnaire (GET screen + POST answers)", questionnaire),
        ("bare route", bare),
        ("floor route (2 Core SELECTs, session, CSRF, Jinja; no ORM, no writes)", floor),
        ("questionnaire screens only (GET, no answers sent)", screens_only),
    ):
        print(
            f"{name}: {result['requests']} requests, {result['rps']:.0f} req/s, "
            f"p50 {result['p50_ms']:.1f} ms, p95 {result['p95_ms']:.1f} ms, "
            f"p99 {result['p99_ms']:.1f} ms"
        )
        print(
            f"    CPU per request: gunicorn {result['cpu_ms_gunicorn']:.2f} ms, "
            f"PostgreSQL {result['cpu_ms_postgresql']:.2f} ms, "
            f"client {result['cpu_ms_client']:.2f} ms"
        )
    print(
        f"questionnaire p95 by request: GET screen {questionnaire['GET_p95_ms']:.1f} ms, "
        f"POST answers {questionnaire['POST_p95_ms']:.1f} ms"
    )
    print(f"ratio questionnaire/bare: {ratio:.2f} (target >= 0.33)")
    print(f"ratio floor/bare: {floor['rps'] / bare['rps']:.2f} (what this stack does at best)")
    print(f"ratio screens only/bare: {screens_only['rps'] / bare['rps']:.2f}")
    print(f"questionnaire p95: {questionnaire['p95_ms']:.1f} ms (target < 100 ms)")


if __name__ == "__main__":
    main()
