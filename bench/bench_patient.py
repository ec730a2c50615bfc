"""Benchmark of the patient questionnaire pages under gunicorn (2 workers) on PostgreSQL.

One gunicorn serves a bench-only app: the product app plus a *floor route* (see
``_floor_views``): a GET and a POST doing what any questionnaire screen must do at the least on
this stack, with the same reads and one write. 16 client threads then run, in ``--rounds``
rounds that alternate product and floor (the order swapped every round, so both see the same
machine load):

* **screens**: GET a questionnaire screen, POST its answers (each thread its own patient, new
  answers every time, so every POST writes), against the floor's GET + POST of the same screen
  (the same page, from one flat template);
* **completion**: welcome -> every screen (GET + POST) -> review -> submit (scores computed and
  stored) -> thank-you page, each thread a new patient per questionnaire, against the same
  sequence of requests on the floor route (whose "submit" reads the answers and writes one row).

Reported per kind: requests/s, latency percentiles, CPU per request of gunicorn, of the
PostgreSQL backends of the bench database and of this client; the ratios product / floor per
round and over all rounds (best and worst round beside it). Target: at least 0.8 of the floor.
A round's phases last a few seconds each, so a single round moves with the machine's other load
(0.67 to 1.04 seen in one run); six rounds by default.

Then, **during the blast**: one ``pro-service jobs run dispatch`` process (a scheduler's
dispatch, at the scheduler's lower CPU priority, ``PRO_SCHEDULER_NICENESS`` unless set) sends
``--blast`` due invitations through the tests' fake Twilio answering in 200 ms,
while 8 paced patient clients (GET + POST a screen, then a pause of ``PACE_SECONDS``)
measure latency. The dispatch process sends for ``WINDOW_SECONDS``, is paused (SIGSTOP) for as
long, and so on until every invitation is sent, so that the pages with the blast running and
with the scheduler idle are measured in alternating windows under the same load from the rest
of the machine; requests count in the window they started in. The same clients also measure
the pages before and after the blast with no dispatch process at all. Target: p95 while
sending < 1.5x p95 while paused.

    .venv/bin/python bench/bench_patient.py [--rounds 6] [--blast 2000] [--postgres-url URL]

(``--rounds 0``: only the blast; ``--blast 0``: no blast.)

PostgreSQL at ``--postgres-url`` or PRO_TEST_POSTGRES_URL (as for the tests); the bench makes
its own database there and drops it. Everything stays on 127.0.0.1; every phase is bounded in
requests and time. Run with ``make bench-patient``. Not a test; pytest does not collect it.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
#: GET + POST pairs per client thread and round in the screens phase.
PAIRS_PER_ROUND = int(os.environ.get("PRO_BENCH_PAIRS", "50"))
#: Whole questionnaires per client thread and round in the completion phase.
FLOWS_PER_ROUND = int(os.environ.get("PRO_BENCH_FLOWS", "2"))
TIME_LIMIT_SECONDS = 120
#: The paced clients of the blast phase, and their pause between requests.
PACED_CLIENTS = 8
PACE_SECONDS = 0.05
#: How long each idle period (before and after the blast) is measured.
IDLE_SECONDS = 15
#: During the blast the dispatch process sends and is paused (SIGSTOP) in turns this long.
WINDOW_SECONDS = 3.0
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
RADIO = re.compile(r'name="q(\d+)" value="(\d+)"')
SCREENS = 15


# --------------------------------------------------------------------------------------------
# The bench-only app (imported by gunicorn from this file)


def bench_app():  # type: ignore[no-untyped-def]
    """The product app plus the floor route's GET and POST and its submit."""
    from pro_service import create_app

    app = create_app()
    page, save, submit = _floor_views(app)
    app.add_url_rule("/bench/floor/<token>/s/<int:number>", "bench_floor", page, methods=["GET"])
    app.add_url_rule(
        "/bench/floor/<token>/s/<int:number>", "bench_floor_save", save, methods=["POST"]
    )
    app.add_url_rule("/bench/floor/<token>/submit", "bench_floor_submit", submit, methods=["POST"])
    return app


#: The floor page: the same page as a questionnaire screen (head, language links, progress,
#: heading, the items with their radio buttons, buttons, the paraphrase notice), from one flat
#: template whose texts were looked up once at start-up (no inheritance, no Babel per page).
#: Each item's HTML, for each answer it may have, is also made once at start-up
#: (``FLOOR_ITEM``), as the product keeps each question's HTML once rendered.
FLOOR_TEMPLATE = """<!doctype html>
<html lang="{{ lang }}">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="referrer" content="no-referrer">
  <meta name="robots" content="noindex, nofollow">
  <title>{{ page.progress }} – {{ texts.site }}</title>
  <link rel="stylesheet" href="{{ texts.stylesheet }}">
</head>
<body>
  <a class="skip-link" href="#main">{{ texts.skip }}</a>
  <header class="site-header">
    <nav aria-label="{{ texts.language }}">
      <ul class="languages">
        {% for code, name in texts.languages %}
        <li>
          <a href="{{ url }}?lang={{ code }}" lang="{{ code }}" hreflang="{{ code }}"
             {% if code == lang %}aria-current="page" class="current"{% endif %}>{{ name }}</a>
        </li>
        {% endfor %}
      </ul>
    </nav>
  </header>
  <main id="main" tabindex="-1">
<div class="progress">
  <p id="progress-label">{{ page.progress }}</p>
  <progress max="{{ total }}" value="{{ number }}" aria-labelledby="progress-label">\
{{ number }} / {{ total }}</progress>
</div>
<h1>{{ page.heading }}</h1>
{% if page.recall %}<p class="recall">{{ page.recall }}</p>{% endif %}
<form method="post" action="{{ url }}" novalidate>
  <input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
  <input type="hidden" name="screen" value="{{ number }}">
  {% for item in page["items"] %}{{ item.html[answers.get(item.number)] }}{% endfor %}
  <div class="actions">
    <button type="submit" name="nav" value="next" class="button primary">{{ page.next }}</button>
    <button type="submit" name="nav" value="back" class="button secondary">{{ texts.back }}\
</button>
  </div>
</form>
  </main>
  <footer class="site-footer">
    {% for notice in texts.notices %}<p class="notice">{{ notice }}</p>{% endfor %}
  </footer>
</body>
</html>"""

#: One item of the floor page, with its radio buttons and ``answer`` checked.
FLOOR_ITEM = """
  <fieldset class="item">
    <legend>
      <span class="item-number">{{ item.number }}.</span> {{ item.text }}
    </legend>
    <div class="options{% if item.wide %} options-wide{% endif %}">
      {% for code, label in item.options %}
      <label class="option" for="q{{ item.number }}-{{ code }}">
        <input type="radio" id="q{{ item.number }}-{{ code }}" name="q{{ item.number }}" \
value="{{ code }}"{% if answer == code %} checked{% endif %}>
        <span>{{ label }}</span>
      </label>
      {% endfor %}
    </div>
  </fieldset>
"""

#: The floor's reads: the link by its hash, and the stored answers.
FLOOR_FIND = "SELECT id, status FROM assessments WHERE token_hash = :hash"
FLOOR_ANSWERS = "SELECT item_number, code FROM responses WHERE assessment_id = :id"

#: The floor's one write for a screen: the answers as arrays, one upsert.
FLOOR_UPSERT = """
INSERT INTO responses (assessment_id, instrument_id, instrument_version, language,
                       item_number, code, answered_at)
SELECT :id, :instrument, :version, 'sv', item, code, now()
FROM unnest(CAST(:items AS integer[]), CAST(:codes AS integer[])) AS t(item, code)
ON CONFLICT (assessment_id, item_number)
DO UPDATE SET code = excluded.code, answered_at = excluded.answered_at
"""


def _floor_views(app):  # type: ignore[no-untyped-def]
    """What a questionnaire screen must do at the least, with the same Flask, database, pool,
    session cookie and CSRF protection (the app's CSRFProtect checks every POST here).

    GET: the link by its hash and the stored answers (two indexed SELECTs with SQLAlchemy
    Core, in autocommit mode as the product reads), a value kept in the session, a CSRF token
    and the same page as the questionnaire's screen from one flat Jinja template (its texts
    and labels looked up once at start-up). Earlier versions of this bench rendered a bare list
    of the items instead, a third of the screen's size (2.1 of 6.3 thousand characters): less
    template work than any questionnaire page must do.
    POST: the link by its hash, the form read, the answers stored with one upsert, a commit
    and a redirect. The floor's submit reads the link and the answers and writes one row.
    No ORM, no rate limit, no Babel, no audit, no scoring: the stack's own cost of such pages,
    against which the questionnaire is read.
    """
    from flask import redirect, request, session
    from sqlalchemy import text as sql

    from pro_service.answering.questionnaire import build_flow
    from pro_service.crypto import hash_token
    from pro_service.extensions import db

    template = app.jinja_env.from_string(FLOOR_TEMPLATE)
    flow = build_flow(app.extensions["instruments"].latest())
    texts, screens = _floor_texts(app, flow)
    find = sql(FLOOR_FIND)
    answers = sql(FLOOR_ANSWERS)
    upsert = sql(FLOOR_UPSERT)
    touch = sql("UPDATE assessments SET updated_at = now() WHERE id = :id")

    def page(token: str, number: int) -> str:
        # Autocommit, as the product's pages that only read: no BEGIN and ROLLBACK around them.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            found = connection.execute(find, {"hash": hash_token(token)}).one()
            stored = {item: code for item, code in connection.execute(answers, {"id": found.id})}
        session["language"] = "sv"
        return template.render(
            lang="sv",
            url=f"/bench/floor/{token}/s/{number}",
            number=number,
            total=len(screens),
            page=screens[number][1],
            texts=texts,
            answers=stored,
        )

    def save(token: str, number: int):  # type: ignore[no-untyped-def]
        instrument, page = screens[number]
        items = page["items"]
        form = request.form
        given = {
            i["number"]: int(form[f"q{i['number']}"]) for i in items if f"q{i['number']}" in form
        }
        with db.engine.begin() as connection:
            found = connection.execute(find, {"hash": hash_token(token)}).one()
            connection.execute(
                upsert,
                {
                    "id": found.id,
                    "instrument": instrument.id,
                    "version": instrument.version,
                    "items": list(given),
                    "codes": list(given.values()),
                },
            )
        following = f"/bench/floor/{token}/s/{number % SCREENS + 1}"
        return redirect(following, 303)

    def submit(token: str):  # type: ignore[no-untyped-def]
        with db.engine.begin() as connection:
            found = connection.execute(find, {"hash": hash_token(token)}).one()
            dict(connection.execute(answers, {"id": found.id}).all())
            connection.execute(touch, {"id": found.id})
        return redirect(f"/bench/floor/{token}/s/1", 303)

    return page, save, submit


def _floor_texts(app, flow):  # type: ignore[no-untyped-def]
    """The floor page's texts in Swedish, looked up once: the page's own (from the product's
    catalog) and per screen its progress line, heading, recall and items."""
    from flask import url_for
    from flask_babel import force_locale, gettext
    from markupsafe import Markup

    from pro_service.web.i18n import LANGUAGE_NAMES
    from pro_service.web.patient.views import _paraphrase_notices

    with app.test_request_context("/"), force_locale("sv"):
        texts = {
            "site": gettext("Health questionnaire"),
            "skip": gettext("Skip to content"),
            "language": gettext("Language"),
            "back": gettext("Back"),
            "languages": LANGUAGE_NAMES,
            "stylesheet": url_for("static", filename="patient/patient.css"),
            "notices": _paraphrase_notices(flow, "sv"),
        }
        screens = {}
        for flow_screen in flow.screens:
            instrument = flow_screen.instrument
            recalls = {instrument.recall_text(n, "sv") for n in flow_screen.items}
            last = flow_screen.number == flow.total
            screens[flow_screen.number] = (
                instrument,
                {
                    "progress": gettext(
                        "Page %(number)s of %(total)s",
                        number=flow_screen.number,
                        total=flow.total,
                    ),
                    "heading": (flow_screen.screen.heading or instrument.name)["sv"],
                    "recall": recalls.pop() if len(recalls) == 1 else None,
                    "next": gettext("Go to review") if last else gettext("Next"),
                    "items": [
                        {
                            "number": n,
                            "text": instrument.item_text(n, "sv"),
                            "options": [
                                (code, instrument.label(n, code, "sv"))
                                for code in instrument.item(n).codes
                            ],
                        }
                        for n in flow_screen.items
                    ],
                },
            )
    item_template = app.jinja_env.from_string(FLOOR_ITEM)
    for _instrument, page in screens.values():
        for item in page["items"]:
            item["wide"] = len(item["options"]) > 4
            item["html"] = {
                answer: Markup(item_template.render(item=item, answer=answer))  # noqa: S704
                for answer in (None, *(code for code, _label in item["options"]))
            }
    return texts, screens


# --------------------------------------------------------------------------------------------
# Setting up: a database with open assessments


def create_database(admin_url: str) -> str:
    name = f"pro_bench_patient_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, url: str) -> None:
    name = make_url(url).database
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
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
    """``count`` patients, each with an open baseline; their links."""
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
                study_id=f"B-{i:04d}",
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
    starts: list[float] = field(default_factory=list)  # perf_counter() at each request's start
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
        self.starts.append(started)
        self.latencies.append(time.perf_counter() - started)
        set_cookie = response.getheader("Set-Cookie")
        if set_cookie:
            self.cookie = set_cookie.split(";", 1)[0]
        return response.status, data

    def expect(self, method: str, path: str, status: int, body: str | None = None) -> str | None:
        got, html = self.request(method, path, body)
        if got != status:
            self.errors.append(f"{method} {path.split('/', 3)[-1]}: {got}")
            return None
        return html


def _form(html: str, extra: dict[str, str], round_: int) -> str:
    csrf = CSRF.search(html)
    items = sorted({int(n) for n, _ in RADIO.findall(html)})
    form = {"csrf_token": csrf.group(1) if csrf else "", **extra}
    # Different answers each round, so every POST really writes (as a first visit does).
    form.update({f"q{n}": str(1 + (n + round_) % 4) for n in items})
    return urllib.parse.urlencode(form)


def product_screen(client: Client, token: str, screen: int, round_: int) -> bool:
    html = client.expect("GET", f"/q/{token}/s/{screen}", 200)
    if html is None:
        return False
    form = _form(html, {"screen": str(screen), "nav": "next"}, round_)
    return client.expect("POST", f"/q/{token}/s/{screen}", 303, form) is not None


def floor_screen(client: Client, token: str, screen: int, round_: int) -> bool:
    html = client.expect("GET", f"/bench/floor/{token}/s/{screen}", 200)
    if html is None:
        return False
    form = _form(html, {"screen": str(screen), "nav": "next"}, round_)
    return client.expect("POST", f"/bench/floor/{token}/s/{screen}", 303, form) is not None


def drive_screens(screen_pair: Callable[[Client, str, int, int], bool], pairs: int):  # type: ignore[no-untyped-def]
    def drive(client: Client, tokens: list[str], deadline: float) -> None:
        token = tokens[0]
        for round_ in range(pairs):
            if time.monotonic() > deadline:
                return
            if not screen_pair(client, token, round_ % SCREENS + 1, round_):
                return

    return drive


def product_flow(client: Client, token: str) -> bool:
    """Welcome, every screen, review, submit (scored), thank-you: 34 requests."""
    if client.expect("GET", f"/q/{token}", 200) is None:
        return False
    for screen in range(1, SCREENS + 1):
        if not product_screen(client, token, screen, screen):
            return False
    html = client.expect("GET", f"/q/{token}/review", 200)
    if html is None:
        return False
    form = _form(html, {}, 0)
    if client.expect("POST", f"/q/{token}/submit", 303, form) is None:
        return False
    return client.expect("GET", f"/q/{token}/thanks", 200) is not None


def floor_flow(client: Client, token: str) -> bool:
    """The same 34 requests on the floor route."""
    if client.expect("GET", f"/bench/floor/{token}/s/1", 200) is None:
        return False
    for screen in range(1, SCREENS + 1):
        if not floor_screen(client, token, screen, screen):
            return False
    html = client.expect("GET", f"/bench/floor/{token}/s/{SCREENS}", 200)
    if html is None:
        return False
    form = _form(html, {}, 0)
    if client.expect("POST", f"/bench/floor/{token}/submit", 303, form) is None:
        return False
    return client.expect("GET", f"/bench/floor/{token}/s/1", 200) is not None


def drive_flows(flow: Callable[[Client, str], bool], count: int, *, spend: bool):  # type: ignore[no-untyped-def]
    """``count`` questionnaires per client: a new link for each if ``spend`` (a completed
    questionnaire's link is spent), else the client's one link every time (the floor's)."""

    def drive(client: Client, tokens: list[str], deadline: float) -> None:
        for token in tokens[:count] if spend else [tokens[0]] * count:
            if time.monotonic() > deadline or not flow(client, token):
                return
        if spend:
            del tokens[:count]

    return drive


def cpu_seconds(database: str) -> dict[str, float]:
    """CPU time used so far (user + system), by who used it: the gunicorn processes, the
    PostgreSQL backends connected to ``database`` and this client. Linux only (``/proc``).

    A backend's command line names its database (``postgres: user db host(port) state``);
    backends that ended since the last call are not counted (the pool keeps them open).
    """
    tick = os.sysconf("SC_CLK_TCK")
    used = {"gunicorn": 0.0, "postgresql": 0.0}
    marker = f" {database} ".encode()
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
        elif cmdline.startswith(b"postgres") and marker in cmdline:
            used["postgresql"] += seconds
    times = os.times()
    used["client"] = times.user + times.system
    return used


@dataclass
class Phase:
    """What one kind of load measured, summed over the rounds."""

    name: str
    requests: int = 0
    units: int = 0  # completed questionnaires (completion phases)
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    rates: list[float] = field(default_factory=list)  # requests/s per round

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def add(self, requests: int, seconds: float, latencies: list[float], cpu: dict[str, float]):  # type: ignore[no-untyped-def]
        self.requests += requests
        self.seconds += seconds
        self.latencies.extend(latencies)
        self.rates.append(requests / seconds)
        for who, value in cpu.items():
            self.cpu[who] = self.cpu.get(who, 0.0) + value

    def cpu_per_request(self) -> float:
        return sum(self.cpu.values()) / self.requests

    def percentile(self, q: int) -> float:
        return statistics.quantiles(self.latencies, n=100)[q - 1] * 1000

    def line(self) -> str:
        cpu = ", ".join(f"{who} {ms * 1000 / self.requests:.2f} ms" for who, ms in self.cpu.items())
        return (
            f"{self.name}: {self.requests} requests, {self.rps:.0f} req/s, p50 "
            f"{self.percentile(50):.1f} ms, p95 {self.percentile(95):.1f} ms, p99 "
            f"{self.percentile(99):.1f} ms; CPU per request: {cpu}"
        )


def run_phase(
    phase: Phase,
    clients: list[Client],
    tokens: list[list[str]],
    target: Callable[[Client, list[str], float], None],
    database: str,
) -> None:
    for client in clients:
        client.latencies.clear()
    deadline = time.monotonic() + TIME_LIMIT_SECONDS
    threads = [
        threading.Thread(target=target, args=(c, tokens[i], deadline))
        for i, c in enumerate(clients)
    ]
    cpu_before = cpu_seconds(database)
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    cpu_after = cpu_seconds(database)
    errors = [e for c in clients for e in c.errors]
    if errors:
        raise SystemExit(f"{phase.name}: {len(errors)} failed requests, e.g. {errors[:3]}")
    latencies = [x for c in clients for x in c.latencies]
    phase.add(
        len(latencies),
        elapsed,
        latencies,
        {who: cpu_after[who] - cpu_before[who] for who in cpu_after},
    )


# --------------------------------------------------------------------------------------------
# The blast: patient pages while a dispatch process sends the 09:00 invitations


def paced(clients: list[Client], tokens: list[str], stop: threading.Event) -> list[float]:
    """Paced GET + POST of screens by each client until ``stop``; the latencies (each
    client's ``starts`` and ``latencies`` keep them by start time)."""
    for client in clients:
        client.latencies.clear()
        client.starts.clear()

    def drive(client: Client, token: str) -> None:
        round_ = 0
        while not stop.is_set():
            if not product_screen(client, token, round_ % SCREENS + 1, round_):
                return
            round_ += 1
            stop.wait(PACE_SECONDS)

    threads = [threading.Thread(target=drive, args=(c, tokens[i])) for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    errors = [e for c in clients for e in c.errors]
    if errors:
        raise SystemExit(f"paced clients: {len(errors)} failed requests, e.g. {errors[:3]}")
    return [x for c in clients for x in c.latencies]


def p95(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100)[94] * 1000


def blast_phase(url: str, port: int, tokens: list[str], messages: int) -> dict[str, Any]:
    """Idle, blast, idle: the paced clients' latencies in each, and the blast's duration."""
    sys.path.insert(0, str(ROOT / "tests"))
    from messaging.fake_twilio import FakeTwilio
    from messaging.test_scheduler_processes import _env, _seed

    command = str(Path(sys.executable).parent / "pro-service")
    fake = FakeTwilio().start()
    fake.delay = 0.2
    try:
        with tempfile.TemporaryDirectory(prefix="bench-blast-") as tmp:
            env = _env(
                url,
                fake,
                Path(tmp),
                PRO_SMS_POOL_SIZE="8",
                PRO_TWILIO_TIMEOUT_SECONDS="5",
                PRO_SMS_CLAIM_LEASE_SECONDS="20",
            )
            # The tests' environment runs scheduler processes at full priority (they time
            # processes against each other); here the dispatch runs as in production, at the
            # scheduler's own niceness, unless PRO_SCHEDULER_NICENESS is set for the bench.
            env.pop("PRO_SCHEDULER_NICENESS")
            if "PRO_SCHEDULER_NICENESS" in os.environ:
                env["PRO_SCHEDULER_NICENESS"] = os.environ["PRO_SCHEDULER_NICENESS"]
            _seed(url, messages)  # due now: the next dispatch sends them all
            clients = [Client(port) for _ in range(PACED_CLIENTS)]

            def idle() -> list[float]:
                stop = threading.Event()
                timer = threading.Timer(IDLE_SECONDS, stop.set)
                timer.start()
                return paced(clients, tokens, stop)

            before = idle()
            stop = threading.Event()
            started = time.perf_counter()
            process = subprocess.Popen(  # noqa: S603 - our own command
                [command, "jobs", "run", "dispatch"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            windows: list[tuple[float, float, bool]] = []  # (from, to, sending)
            niceness: list[int] = []

            def alternate() -> None:
                """Sending and paused (SIGSTOP) windows in turn until the dispatch ends."""
                sending, begun = True, time.perf_counter()
                while True:
                    try:
                        process.wait(timeout=WINDOW_SECONDS)
                    except subprocess.TimeoutExpired:
                        now = time.perf_counter()
                        if sending:  # its niceness, as it set it for itself
                            niceness.append(os.getpriority(os.PRIO_PROCESS, process.pid))
                        windows.append((begun, now, sending))
                        process.send_signal(signal.SIGSTOP if sending else signal.SIGCONT)
                        sending, begun = not sending, now
                        continue
                    windows.append((begun, time.perf_counter(), sending))
                    break
                stop.set()

            controller = threading.Thread(target=alternate)
            controller.start()
            try:
                during = paced(clients, tokens, stop)
            finally:
                if process.poll() is None:
                    process.send_signal(signal.SIGCONT)
                controller.join()
            seconds = time.perf_counter() - started
            if process.returncode != 0:
                raise SystemExit(f"dispatch failed: {process.stderr.read().decode()[-2000:]}")
            by_window: dict[bool, list[float]] = {True: [], False: []}
            for client in clients:
                for start, latency in zip(client.starts, client.latencies, strict=True):
                    for begun, ended, sending in windows:
                        if begun <= start < ended:
                            by_window[sending].append(latency)
                            break
            after = idle()
            sent = len(fake.messages)
    finally:
        fake.stop()
    return {
        "idle": before + after,
        "idle_before": before,
        "idle_after": after,
        "blast": during,
        "sending": by_window[True],
        "paused": by_window[False],
        "sending_seconds": sum(e - b for b, e, sending in windows if sending),
        "seconds": seconds,
        "sent": sent,
        "niceness": sorted(set(niceness)),
    }


# --------------------------------------------------------------------------------------------
# gunicorn


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


def _spread(values: list[float]) -> str:
    return f"best round {max(values):.2f}, worst round {min(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--blast", type=int, default=2000, help="invitations (0: no blast)")
    parser.add_argument("--postgres-url", default=ADMIN_URL)
    args = parser.parse_args()

    url = create_database(args.postgres_url)
    database = make_url(url).database or ""
    process = None
    flows_needed = FLOWS_PER_ROUND * (args.rounds + 1)  # one more round to warm up
    try:
        all_tokens = seed(url, CONCURRENCY * (1 + flows_needed))
        screen_tokens = [[t] for t in all_tokens[:CONCURRENCY]]
        flow_tokens = [
            all_tokens[CONCURRENCY + i * flows_needed : CONCURRENCY + (i + 1) * flows_needed]
            for i in range(CONCURRENCY)
        ]
        port = free_port()
        env = {
            **os.environ,
            "PRO_DATABASE_URL": url,
            "PRO_ENV": "test",
            "PRO_LOG_LEVEL": "WARNING",
            "PRO_LINK_RATE_LIMIT": "100000000",
            "PYTHONPATH": str(ROOT / "bench"),
        }
        process = subprocess.Popen(gunicorn_command(port), cwd=ROOT, env=env)  # noqa: S603
        wait_for(port, process)
        clients = [Client(port) for _ in range(CONCURRENCY)]
        sizes = {
            "questionnaire screen": len(clients[0].request("GET", f"/q/{all_tokens[0]}/s/1")[1]),
            "floor screen": len(clients[0].request("GET", f"/bench/floor/{all_tokens[0]}/s/1")[1]),
        }

        kinds: dict[str, tuple[Phase, Callable[..., None]]] = {
            "screens": (
                Phase("questionnaire screens (GET + POST)"),
                drive_screens(product_screen, PAIRS_PER_ROUND),
            ),
            "floor screens": (
                Phase("floor route (GET + POST)"),
                drive_screens(floor_screen, PAIRS_PER_ROUND),
            ),
            "completion": (
                Phase("questionnaire, welcome to submit with scoring"),
                drive_flows(product_flow, FLOWS_PER_ROUND, spend=True),
            ),
            "floor completion": (
                Phase("floor route, the same requests"),
                drive_flows(floor_flow, FLOWS_PER_ROUND, spend=False),
            ),
        }
        # Warm up every path in every worker (not counted).
        for name, (_phase, target) in kinds.items():
            tokens = flow_tokens if name == "completion" else screen_tokens
            run_phase(Phase("warm-up"), clients, tokens, target, database)
        pairs = (("screens", "floor screens"), ("completion", "floor completion"))
        ratios: dict[str, list[float]] = {"screens": [], "completion": []}
        for round_number in range(args.rounds):
            for product, floor in pairs:
                order = (product, floor) if round_number % 2 == 0 else (floor, product)
                for name in order:
                    phase, target = kinds[name]
                    tokens = flow_tokens if name == "completion" else screen_tokens
                    run_phase(phase, clients, tokens, target, database)
                ratios[product].append(kinds[product][0].rates[-1] / kinds[floor][0].rates[-1])
        blast = (
            blast_phase(url, port, [t[0] for t in screen_tokens], args.blast)
            if args.blast
            else None
        )
    finally:
        if process is not None and process.poll() is None:
            process.terminate()
            process.wait(timeout=30)
        drop_database(args.postgres_url, url)

    print(
        f"gunicorn {WORKERS} workers x {THREADS} threads, at most {CONCURRENCY // WORKERS} "
        f"connections each, PostgreSQL, concurrency {CONCURRENCY}, {args.rounds} rounds "
        "alternating product and floor"
    )
    print("page size: " + ", ".join(f"{k} {v} characters" for k, v in sizes.items()))
    for phase, _target in kinds.values():
        if phase.requests:
            print(phase.line())
    for product, floor in pairs if args.rounds else ():
        overall = kinds[product][0].rps / kinds[floor][0].rps
        cpu = kinds[floor][0].cpu_per_request() / kinds[product][0].cpu_per_request()
        print(
            f"ratio {product} / floor: {overall:.2f} over all rounds "
            f"({_spread(ratios[product])}; target >= 0.8); by CPU per request (gunicorn + "
            f"PostgreSQL + client, less moved by other load on the machine): {cpu:.2f}"
        )
    if blast is not None:
        sending, paused = p95(blast["sending"]), p95(blast["paused"])
        idle, during = p95(blast["idle"]), p95(blast["blast"])
        print(
            f"the blast: {blast['sent']} invitations sent by one dispatch process, fake Twilio "
            f"answering in 200 ms, {blast['sending_seconds']:.1f} s of sending in "
            f"{WINDOW_SECONDS:.0f} s windows between paused ones ({blast['seconds']:.1f} s in "
            f"all), its niceness {blast['niceness']}"
        )
        print(
            f"    interleaved: sending {len(blast['sending'])} requests, p95 {sending:.1f} ms; "
            f"paused {len(blast['paused'])} requests, p95 {paused:.1f} ms; "
            f"ratio {sending / paused:.2f} (target < 1.5)"
        )
        print(
            f"    before and after, no dispatch process: {len(blast['idle'])} requests, p95 "
            f"{idle:.1f} ms (before {p95(blast['idle_before']):.1f} ms, after "
            f"{p95(blast['idle_after']):.1f} ms); the whole blast {len(blast['blast'])} requests, "
            f"p95 {during:.1f} ms; sending / no dispatch {sending / idle:.2f}"
        )


if __name__ == "__main__":
    main()
