"""The whole flow at DEBUG leaves no phone number, link token or answer in any log line."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import time_machine
from sqlalchemy import select

from pro_service.logging_privacy import redact
from pro_service.messaging.dispatch import dispatch_due, reconcile_stuck
from pro_service.messaging.outbox import queue_invitations
from pro_service.models import Assessment
from pro_service.scheduler.jobs import dispatcher
from pro_service.scheduling.assessments import current_token, update_windows

from .fake_twilio import timeout_after_create
from pages import csrf_of

NOW = datetime(2026, 3, 16, 10, 0, tzinfo=UTC)
PATIENTS = [
    ("P-001", "070-174 06 10", "+46701740610"),
    ("P-002", "+358 40 123 4567", "+358401234567"),
]


def test_a_whole_flow_at_debug_logs_no_number_token_or_answer(
    app, client, session, make_site, runner, fake_twilio, tmp_path, caplog, monkeypatch, request
):
    caplog.set_level(logging.DEBUG)
    make_site("SE-LUN")
    session.commit()
    csv = tmp_path / "patients.csv"
    csv.write_text(
        "study_id;site;phone;language;inclusion_date\n"
        + "".join(f"{sid};SE-LUN;{typed};sv;2026-03-16\n" for sid, typed, _ in PATIENTS),
        encoding="utf-8",
    )
    assert runner.invoke(args=["import-patients", str(csv)]).exit_code == 0

    # Invitations, one of them sent into a timeout and settled by asking Twilio (the status
    # look-up is where the twilio library logged the number).
    update_windows(session, now=NOW, vault=app.extensions["vault"])
    queue_invitations(session, now=NOW, schedule=app.extensions["schedule"])
    session.commit()
    fake_twilio.script.append(timeout_after_create(2.0))
    dispatch_due(session, dispatcher(app), now=NOW)
    reconcile_stuck(session, dispatcher(app), now=NOW + timedelta(minutes=6))
    dispatch_due(session, dispatcher(app), now=NOW + timedelta(minutes=6))
    assert sum(fake_twilio.counts().values()) == 2
    session.expire_all()

    tokens = [
        current_token(a, app.extensions["vault"]) for a in session.scalars(select(Assessment))
    ]
    tokens = [t for t in tokens if t]
    assert tokens
    session.close()

    # The patient answers a screen; then a page of theirs fails with a server error.
    link = f"/q/{tokens[0]}"
    traveller = time_machine.travel(NOW + timedelta(hours=1), tick=True)
    traveller.start()
    request.addfinalizer(traveller.stop)
    first = client.get(f"{link}/s/1")
    assert first.status_code == 200, (first.status_code, first.headers.get("Location"))
    page = first.get_data(as_text=True)
    answer = client.post(
        f"{link}/s/1", data={"csrf_token": csrf_of(page), "screen": "1", "nav": "next", "q1": "3"}
    )
    assert answer.status_code == 303

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("forced failure")

    monkeypatch.setattr("pro_service.web.patient.views.questionnaire.answers_of", broken)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    assert client.get(f"{link}/s/2").status_code == 500

    lines = [record.getMessage() for record in caplog.records] + caplog.text.splitlines()
    assert any("Exception on /q/<link>/s/2" in line for line in lines)  # the 500 was logged
    found = []
    for line in lines:
        for _, typed, e164 in PATIENTS:
            for number in (typed, e164, e164.lstrip("+"), typed.replace(" ", "")):
                if number in line:
                    found.append((number, line))
        for token in tokens:
            if token in line:
                found.append(("token", line))
        if "'q1': '3'" in line or "q1=3" in line:
            found.append(("answer", line))
    assert not found, found[:5]
    assert len(lines) > 20  # the flow did log: the check above had something to read


def test_redaction_replaces_links_and_numbers_and_leaves_the_rest():
    assert redact("GET /q/AbC-123_x/s/2 HTTP/1.1") == "GET /q/<link>/s/2 HTTP/1.1"
    assert redact("To: +46701740610, retry 3") == "To: <phone>, retry 3"
    assert redact("Messages.json?To=%2B46701740610&P=1") == "Messages.json?To=<phone>&P=1"
    assert redact("site 46 sent 12 messages at +1 s") == "site 46 sent 12 messages at +1 s"
    assert (
        redact("Exception on /staff/set-password/Zx_9-aB [POST]")
        == "Exception on /staff/set-password/<link> [POST]"
    )
