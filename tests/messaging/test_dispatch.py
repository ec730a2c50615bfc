"""Dispatch through the real twilio library to the fake Twilio server: once, and failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import select

from pro_service.answering.responses import complete_assessment, save_answers
from pro_service.audit import Actor
from pro_service.messaging.console import ConsoleBackend
from pro_service.messaging.dispatch import MAX_ATTEMPTS, dispatch_due, reconcile_stuck
from pro_service.messaging.outbox import queue_invitations, queue_resend
from pro_service.models import AuditEvent, OutboxMessage
from pro_service.scheduler.jobs import dispatcher
from pro_service.scheduling.assessments import update_windows

from .conftest import SENDER
from .fake_twilio import error, timeout_after_create, timeout_before_create

NOW = datetime(2026, 3, 16, 10, 0, tzinfo=UTC)  # 11:00 in Stockholm
NUMBER = "+46701740605"


@pytest.fixture
def queued(app, session, make_site, make_patient):
    """One patient with an open baseline and its invitation queued."""
    site = make_site()
    patient = make_patient(site)
    session.commit()
    update_windows(session, now=NOW, vault=app.extensions["vault"])
    session.commit()
    queue_invitations(session, now=NOW, schedule=app.extensions["schedule"])
    session.commit()
    return patient


def _message(session):
    session.expire_all()
    return session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).first()


def _dispatch(app, session, now=NOW):
    return dispatch_due(session, dispatcher(app), now=now)


def test_an_invitation_is_sent_once_with_the_link_and_a_status_callback(
    app, session, queued, fake_twilio
):
    summary = _dispatch(app, session)
    assert summary.sent == 1
    _dispatch(app, session, NOW + timedelta(minutes=1))
    assert fake_twilio.count(NUMBER) == 1
    (sent,) = fake_twilio.messages
    assert sent["from"] == SENDER
    assert sent["body"].startswith(
        "ScanPan: din enkät är klar att besvara: https://pro.example.test/q/"
    )
    callback = urlparse(sent["_status_callback"])
    message = _message(session)
    assert f"{callback.scheme}://{callback.netloc}{callback.path}" == (
        "https://pro.example.test/twilio/status"
    )
    assert parse_qs(callback.query) == {"m": [str(message.id)]}
    assert (message.status, message.provider_id) == ("sent", sent["sid"])
    assert message.sent_at == NOW
    # The audit trail says a message went out: which one and what kind, never its text or number.
    (event,) = session.scalars(select(AuditEvent).where(AuditEvent.action == "message.sent"))
    assert (event.object_id, event.actor_type) == (str(message.id), "system")
    assert event.after["kind"] == "invitation"
    assert NUMBER.lstrip("+") not in str(event.after)
    assert "/q/" not in str(event.after)


def test_a_site_with_its_own_sender_sends_from_it(app, session, queued, fake_twilio):
    queued.site.sms_sender = "UppsalaPRO"
    session.commit()
    assert _dispatch(app, session).sent == 1
    (sent,) = fake_twilio.messages
    assert sent["from"] == "UppsalaPRO"


def test_nothing_is_sent_outside_the_sites_sending_hours(app, session, queued, fake_twilio):
    evening = datetime(2026, 3, 16, 19, 30, tzinfo=UTC)  # 20:30 in Stockholm
    assert _dispatch(app, session, evening).claimed == 0
    assert _dispatch(app, session, datetime(2026, 3, 17, 2, 0, tzinfo=UTC)).claimed == 0
    assert fake_twilio.count(NUMBER) == 0
    assert _dispatch(app, session, datetime(2026, 3, 17, 8, 0, tzinfo=UTC)).sent == 1


@pytest.mark.parametrize(("status", "code"), [(500, None), (503, None)])
def test_server_errors_are_retried_after_a_backoff(app, session, queued, fake_twilio, status, code):
    fake_twilio.script.extend([error(status, code), error(status, code)])
    assert _dispatch(app, session).retrying == 1
    message = _message(session)
    assert (message.status, message.next_attempt_at) == ("pending", NOW + timedelta(seconds=30))
    assert _dispatch(app, session, NOW + timedelta(seconds=10)).claimed == 0  # still backing off
    assert _dispatch(app, session, NOW + timedelta(seconds=30)).retrying == 1
    assert _message(session).next_attempt_at == NOW + timedelta(seconds=90)  # doubled
    assert _dispatch(app, session, NOW + timedelta(seconds=90)).sent == 1
    assert fake_twilio.count(NUMBER) == 1
    assert _message(session).attempts == 3


@pytest.mark.parametrize(("retry_after", "wait"), [("7", 7), (None, 5)])
def test_a_rate_limited_message_waits_for_retry_after_and_is_never_given_up_for_it(
    app, session, queued, fake_twilio, retry_after, wait
):
    fake_twilio.script.extend([error(429, 20429, retry_after=retry_after)] * (MAX_ATTEMPTS + 1))
    at = NOW
    for _ in range(MAX_ATTEMPTS + 1):
        summary = _dispatch(app, session, at)
        assert (summary.rate_limited, summary.rate_limit_wait) == (1, timedelta(seconds=wait))
        message = _message(session)
        assert (message.status, message.next_attempt_at) == (
            "pending",
            at + timedelta(seconds=wait),
        )
        assert _dispatch(app, session, at + timedelta(seconds=wait - 1)).claimed == 0
        at += timedelta(seconds=wait)
    assert _dispatch(app, session, at).sent == 1
    assert fake_twilio.count(NUMBER) == 1
    assert _message(session).attempts == 1  # the 429s were not attempts


def test_retries_stop_at_the_bound_and_the_message_is_failed(app, session, queued, fake_twilio):
    fake_twilio.script.extend([error(500)] * (MAX_ATTEMPTS + 2))
    at = NOW
    for _ in range(MAX_ATTEMPTS):
        _dispatch(app, session, at)
        at += timedelta(hours=1)
    message = _message(session)
    assert message.status == "failed"
    assert message.attempts == MAX_ATTEMPTS
    assert "gave up" in message.error_message
    assert _dispatch(app, session, at).claimed == 0
    assert fake_twilio.count(NUMBER) == 0


def test_a_timeout_after_twilio_created_the_message_is_reconciled_not_resent(
    app, session, queued, fake_twilio
):
    fake_twilio.script.append(timeout_after_create(2.0))  # client timeout is 1 s
    assert _dispatch(app, session).ambiguous == 1
    message = _message(session)
    assert message.status == "sending"
    assert message.error_code == "timeout"
    # Dispatch never resends an unclear message; reconciliation asks Twilio first.
    assert _dispatch(app, session, NOW + timedelta(minutes=1)).claimed == 0
    summary = reconcile_stuck(session, dispatcher(app), now=NOW + timedelta(minutes=1))
    assert summary.sent == 1
    assert fake_twilio.list_requests == 1
    message = _message(session)
    assert message.status == "sent"
    assert message.provider_id == fake_twilio.messages[0]["sid"]
    assert fake_twilio.count(NUMBER) == 1


def test_a_timeout_where_twilio_has_no_message_is_sent_again_once(
    app, session, queued, fake_twilio
):
    fake_twilio.script.append(timeout_before_create(2.0))
    assert _dispatch(app, session).ambiguous == 1
    later = NOW + timedelta(minutes=1)
    assert reconcile_stuck(session, dispatcher(app), now=later).retrying == 1
    assert _message(session).status == "pending"
    assert _dispatch(app, session, later).sent == 1
    assert fake_twilio.count(NUMBER) == 1


def test_a_message_claimed_by_a_process_that_died_is_reconciled_after_its_lease(
    app, session, queued, fake_twilio
):
    message = _message(session)
    message.status = "sending"
    message.claimed_by = "dead-process"
    message.claimed_at = NOW
    message.next_attempt_at = NOW + timedelta(minutes=5)
    session.commit()
    assert reconcile_stuck(session, dispatcher(app), now=NOW + timedelta(minutes=4)).claimed == 0
    assert reconcile_stuck(session, dispatcher(app), now=NOW + timedelta(minutes=6)).retrying == 1
    assert _dispatch(app, session, NOW + timedelta(minutes=6)).sent == 1
    assert fake_twilio.count(NUMBER) == 1


@pytest.mark.parametrize(
    ("code", "flag"),
    [
        (21211, "phone_invalid"),
        (21408, "phone_invalid"),
        (21614, "phone_invalid"),
        (21610, "opted_out"),
    ],
)
def test_a_permanent_error_fails_the_message_flags_the_patient_and_stops_retrying(
    app, session, queued, fake_twilio, code, flag
):
    fake_twilio.permanent[NUMBER] = code
    assert _dispatch(app, session).failed == 1
    message = _message(session)
    assert (message.status, message.error_code) == ("failed", str(code))
    session.refresh(queued)
    assert getattr(queued, flag) is True
    events = session.scalars(select(AuditEvent).where(AuditEvent.object_id == str(queued.id)))
    assert any(e.after and e.after.get("error_code") == str(code) for e in events)
    assert _dispatch(app, session, NOW + timedelta(hours=2)).claimed == 0
    assert fake_twilio.create_requests == 1


def test_a_patient_without_a_number_gets_a_failed_message_and_a_flag_never_silence(
    app, session, make_site, make_patient, fake_twilio
):
    site = make_site()
    patient = make_patient(site, phone=None)
    session.commit()
    update_windows(session, now=NOW, vault=app.extensions["vault"])
    queue_invitations(session, now=NOW, schedule=app.extensions["schedule"])
    session.commit()
    assert _dispatch(app, session).failed == 1
    message = _message(session)
    assert (message.status, message.error_code) == ("failed", "no_valid_phone")
    assert patient.phone_invalid is True
    assert fake_twilio.create_requests == 0


def test_a_reminder_claimed_after_completion_is_cancelled_not_sent(
    app, session, queued, fake_twilio
):
    _dispatch(app, session)  # the invitation
    baseline = queued.assessments[0]
    queue_resend(session, now=NOW, actor=Actor.staff(1), assessment=baseline)
    session.commit()
    registry = app.extensions["instruments"]
    instrument = registry.get("qlq-c30", "3.0")
    save_answers(
        session, now=NOW, assessment=baseline, instrument=instrument, language="sv", answers={1: 1}
    )
    # Completed in a way that bypasses the cancellation hook: dispatch must still check.
    baseline.status = "completed"
    session.commit()
    summary = _dispatch(app, session, NOW + timedelta(minutes=1))
    assert summary.cancelled == 1
    assert fake_twilio.count(NUMBER) == 1
    resend = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "resend")).one()
    assert (resend.status, resend.error_message) == ("cancelled", "time point is completed")


def test_completing_cancels_a_queued_resend(app, session, queued, fake_twilio):
    _dispatch(app, session)
    baseline = queued.assessments[0]
    queue_resend(session, now=NOW, actor=Actor.staff(1), assessment=baseline)
    session.commit()
    registry = app.extensions["instruments"]
    for ref in baseline.instruments:
        instrument = registry.get(*ref.split(":"))
        save_answers(
            session,
            now=NOW,
            assessment=baseline,
            instrument=instrument,
            language="sv",
            answers={n: min(i.codes) for n, i in instrument.items.items()},
        )
    complete_assessment(
        session,
        now=NOW,
        assessment=baseline,
        registry=registry,
        language="sv",
        actor=Actor.staff(1),
    )
    session.commit()
    assert _dispatch(app, session, NOW + timedelta(minutes=1)).claimed == 0
    assert fake_twilio.count(NUMBER) == 1


def test_the_console_backend_logs_the_message_without_the_link_token(caplog):
    caplog.set_level("INFO")
    result = ConsoleBackend().send(
        to=NUMBER,
        body="ScanPan: https://pro.example.test/q/secretTOKEN123 Svara STOPP",
        status_callback=None,
    )
    assert result.status == "sent"
    assert "secretTOKEN123" not in caplog.text
    assert NUMBER not in caplog.text
    assert "ScanPan" in caplog.text
