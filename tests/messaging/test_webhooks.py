"""Twilio's status callbacks and inbound replies: signatures, idempotence, STOP/START."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from pro_service.messaging.outbox import queue_invitations
from pro_service.models import AuditEvent, OutboxMessage, Patient
from pro_service.scheduling.assessments import update_windows

PUBLIC = "https://pro.example.test"
NOW = datetime(2026, 3, 16, 10, 0, tzinfo=UTC)
NUMBER = "+46701740605"


def _signature(app, url, params):
    token = app.config["PRO_SETTINGS"].twilio_auth_token
    return RequestValidator(token).compute_signature(url, params)


def _post(app, client, path, params, *, signed_url=None, **kwargs):
    signature = _signature(app, signed_url or PUBLIC + path, params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature}, **kwargs)


@pytest.fixture
def sent(app, session, make_site, make_patient):
    site = make_site()
    make_patient(site)
    session.commit()
    update_windows(session, now=NOW, vault=app.extensions["vault"])
    queue_invitations(session, now=NOW, schedule=app.extensions["schedule"])
    message = session.scalars(select(OutboxMessage)).one()
    message.status = "sent"
    message.provider_id = "SM" + "1" * 32
    message.sent_at = NOW
    session.commit()
    return message


def _reload(session, message):
    session.expire_all()
    return session.get(OutboxMessage, message.id)


def _status(app, client, message, status, **extra):
    params = {"MessageSid": message.provider_id, "MessageStatus": status, **extra}
    return _post(app, client, f"/twilio/status?m={message.id}", params)


def test_a_delivery_report_is_recorded(app, client, session, sent):
    assert _status(app, client, sent, "delivered").status_code == 204
    message = _reload(session, sent)
    assert (message.status, message.provider_status) == ("delivered", "delivered")


def test_callbacks_are_idempotent_and_never_move_a_status_backwards(app, client, session, sent):
    for status in ("sent", "delivered", "delivered", "sent", "queued"):
        assert _status(app, client, sent, status).status_code == 204
    assert _reload(session, sent).status == "delivered"


def test_a_report_that_overtakes_the_dispatchers_own_record_still_finds_its_message(
    app, client, session, sent
):
    sent.status = "sending"
    sent.provider_id = None
    session.commit()
    params = {"MessageSid": "SM" + "2" * 32, "MessageStatus": "delivered"}
    assert _post(app, client, f"/twilio/status?m={sent.id}", params).status_code == 204
    message = _reload(session, sent)
    assert (message.status, message.provider_id) == ("delivered", "SM" + "2" * 32)


def test_an_undelivered_report_for_an_unknown_handset_flags_the_patient(app, client, session, sent):
    assert _status(app, client, sent, "undelivered", ErrorCode="30005").status_code == 204
    message = _reload(session, sent)
    assert (message.status, message.error_code) == ("undelivered", "30005")
    assert session.get(Patient, sent.patient_id).phone_invalid is True


def test_a_bad_signature_gets_403_and_changes_nothing(app, client, session, sent):
    params = {"MessageSid": sent.provider_id, "MessageStatus": "delivered"}
    response = client.post(
        f"/twilio/status?m={sent.id}", data=params, headers={"X-Twilio-Signature": "forged="}
    )
    assert response.status_code == 403
    missing = client.post(f"/twilio/status?m={sent.id}", data=params)
    assert missing.status_code == 403
    # Signed over other parameters than those posted:
    signature = _signature(app, f"{PUBLIC}/twilio/status?m={sent.id}", {**params, "x": "1"})
    tampered = client.post(
        f"/twilio/status?m={sent.id}", data=params, headers={"X-Twilio-Signature": signature}
    )
    assert tampered.status_code == 403
    assert _reload(session, sent).status == "sent"


def test_the_signature_is_checked_against_the_public_address_behind_a_proxy(
    app, client, session, sent
):
    params = {"MessageSid": sent.provider_id, "MessageStatus": "delivered"}
    path = f"/twilio/status?m={sent.id}"
    # The proxy forwards to an internal address; Twilio signed the public one.
    internal = {"base_url": "http://10.0.0.5:8000"}
    signed_internal = _post(
        app, client, path, params, signed_url="http://10.0.0.5:8000" + path, **internal
    )
    assert signed_internal.status_code == 403
    signed_public = _post(app, client, path, params, **internal)
    assert signed_public.status_code == 204
    assert _reload(session, sent).status == "delivered"


def test_the_signature_covers_the_query_string(app, client, session, sent):
    params = {"MessageSid": sent.provider_id, "MessageStatus": "delivered"}
    signature = _signature(app, f"{PUBLIC}/twilio/status?m={sent.id}", params)
    moved = client.post(
        f"/twilio/status?m={sent.id + 1}", data=params, headers={"X-Twilio-Signature": signature}
    )
    assert moved.status_code == 403


def _reply(app, client, body, number=NUMBER):
    return _post(app, client, "/twilio/inbound", {"From": number, "Body": body, "To": "+4670"})


@pytest.mark.parametrize(
    ("word", "language", "confirmation"),
    [
        ("STOP", "en", "You will no longer get messages"),
        ("Stopp", "sv", "Du får inte längre SMS"),
        ("sluta!", "sv", "Du får inte längre SMS"),
        ("AVSLUTA tack", "sv", "Du får inte längre SMS"),
        ("Lopeta", "fi", "Et saa enää viestejä"),
        ("LOPPU", "fi", "Et saa enää viestejä"),
        ("unsubscribe", "en", "You will no longer get messages"),
    ],
)
def test_a_stop_reply_in_any_of_the_three_languages_opts_the_patient_out(
    app, client, session, make_site, make_patient, word, language, confirmation
):
    site = make_site()
    patient = make_patient(site, language=language)
    session.commit()
    update_windows(session, now=NOW, vault=app.extensions["vault"])
    queue_invitations(session, now=NOW.replace(hour=21), schedule=app.extensions["schedule"])
    session.commit()
    response = _reply(app, client, word)
    assert response.status_code == 200
    assert response.mimetype == "application/xml"
    assert confirmation in response.get_data(as_text=True)
    session.expire_all()
    patient = session.get(Patient, patient.id)
    assert patient.opted_out is True
    statuses = [m.status for m in session.scalars(select(OutboxMessage))]
    assert statuses == ["cancelled"]
    (event,) = session.scalars(select(AuditEvent).where(AuditEvent.action == "patient.opted_out"))
    assert NUMBER not in str(event.after) and NUMBER not in str(event.before)


@pytest.mark.parametrize("word", ["START", "Börja", "borja", "ALOITA"])
def test_start_opts_the_patient_back_in(app, client, session, make_site, make_patient, word):
    site = make_site()
    patient = make_patient(site)
    session.commit()
    _reply(app, client, "STOPP")
    response = _reply(app, client, word)
    assert "Du får SMS från ScanPan-studien igen" in response.get_data(as_text=True)
    session.expire_all()
    assert session.get(Patient, patient.id).opted_out is False


def test_a_second_stop_changes_nothing_more(app, client, session, make_site, make_patient):
    site = make_site()
    make_patient(site)
    session.commit()
    _reply(app, client, "STOP")
    _reply(app, client, "STOP")
    events = session.scalars(select(AuditEvent).where(AuditEvent.action == "patient.opted_out"))
    assert len(list(events)) == 1


def test_other_replies_and_unknown_numbers_change_nothing(
    app, client, session, make_site, make_patient
):
    site = make_site()
    patient = make_patient(site)
    session.commit()
    assert (
        _reply(app, client, "Tack, jag svarar i morgon")
        .get_data(as_text=True)
        .endswith("<Response />")
    )
    assert _reply(app, client, "STOP", number="+46701740699").status_code == 200
    session.expire_all()
    assert session.get(Patient, patient.id).opted_out is False


def test_a_stop_with_a_bad_signature_is_refused(app, client, session, make_site, make_patient):
    site = make_site()
    patient = make_patient(site)
    session.commit()
    response = client.post(
        "/twilio/inbound",
        data={"From": NUMBER, "Body": "STOP"},
        headers={"X-Twilio-Signature": "bad"},
    )
    assert response.status_code == 403
    session.expire_all()
    assert session.get(Patient, patient.id).opted_out is False


def test_a_replayed_stop_changes_nothing_and_sends_no_second_confirmation(
    app, client, session, make_site, make_patient
):
    site = make_site()
    patient = make_patient(site)
    session.commit()
    stop = {"From": NUMBER, "Body": "STOPP", "To": "+4670", "MessageSid": "SM" + "a" * 32}
    first = _post(app, client, "/twilio/inbound", stop)
    assert "Du får inte längre SMS" in first.get_data(as_text=True)
    # The patient opts back in from another message; then the old STOP arrives again.
    _post(app, client, "/twilio/inbound", {**stop, "Body": "START", "MessageSid": "SM" + "b" * 32})
    replay = _post(app, client, "/twilio/inbound", stop)
    assert replay.status_code == 200
    assert replay.get_data(as_text=True).endswith("<Response />")  # no SMS in the reply
    session.expire_all()
    assert session.get(Patient, patient.id).opted_out is False
    actions = [e.action for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert actions.count("patient.opted_out") == 1
    assert actions.count("patient.opted_in") == 1


def test_a_replayed_start_sends_no_second_confirmation(
    app, client, session, make_site, make_patient
):
    site = make_site()
    make_patient(site)
    session.commit()
    _reply(app, client, "STOP")
    start = {"From": NUMBER, "Body": "START", "To": "+4670", "MessageSid": "SM" + "c" * 32}
    assert "igen" in _post(app, client, "/twilio/inbound", start).get_data(as_text=True)
    assert (
        _post(app, client, "/twilio/inbound", start).get_data(as_text=True).endswith("<Response />")
    )
