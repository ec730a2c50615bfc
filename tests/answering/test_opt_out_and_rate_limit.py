"""Stopping messages from the page, and the per-address limit on link requests."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from pro_service import create_app
from pro_service.clock import utcnow
from pro_service.extensions import db
from pro_service.models import AuditEvent, OutboxMessage, Patient, RateLimitCounter
from pro_service.web.patient import hooks

from pages import csrf_of, load


def _message(app, patient_id: int, status: str) -> int:
    with app.app_context():
        now = utcnow()
        message = OutboxMessage(
            patient_id=patient_id,
            kind="reminder",
            language="sv",
            scheduled_for=now + timedelta(days=1),
            status=status,
            created_at=now,
            updated_at=now,
        )
        db.session.add(message)
        db.session.commit()
        return message.id


def test_a_patient_can_stop_messages_from_the_welcome_page(app, client, link):
    pending = _message(app, link.patient_id, "pending")
    sent = _message(app, link.patient_id, "sent")
    welcome = client.get(link.url).get_data(as_text=True)
    assert f'href="/q/{link.token}/stop"' in welcome
    confirm = client.get(f"{link.url}/stop")
    assert confirm.status_code == 200
    assert "Stänga av sms?" in confirm.get_data(as_text=True)
    assert load(app, Patient, link.patient_id).opted_out is False  # looking changes nothing

    response = client.post(
        f"{link.url}/stop", data={"csrf_token": csrf_of(confirm.get_data(as_text=True))}
    )
    assert response.status_code == 303
    done = client.get(response.headers["Location"])
    assert "Du kommer inte att få fler sms från studien." in done.get_data(as_text=True)

    patient = load(app, Patient, link.patient_id)
    assert patient.opted_out is True
    assert patient.opted_out_at is not None
    assert load(app, OutboxMessage, pending).status == "cancelled"
    assert load(app, OutboxMessage, sent).status == "sent"
    with app.app_context():
        events = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "patient.opted_out")
        ).all()
        assert [(e.actor_type, e.object_id) for e in events] == [("patient", str(link.patient_id))]
        assert events[0].after["messages_cancelled"] == 1
    # The questions can still be answered, and the welcome page no longer offers the button.
    again = client.get(f"{link.url}/welcome").get_data(as_text=True)
    assert f'href="/q/{link.token}/stop"' not in again
    assert client.get(link.screen(1)).status_code == 200


def test_a_patient_can_stop_messages_from_the_thank_you_page(app, client, link):
    review = client.get(f"{link.url}/review").get_data(as_text=True)
    client.post(f"{link.url}/submit", data={"csrf_token": csrf_of(review)})
    thanks = client.get(f"{link.url}/thanks").get_data(as_text=True)
    assert f'href="/q/{link.token}/stop"' in thanks
    confirm = client.get(f"{link.url}/stop").get_data(as_text=True)
    response = client.post(f"{link.url}/stop", data={"csrf_token": csrf_of(confirm)})
    assert response.status_code == 303
    assert load(app, Patient, link.patient_id).opted_out is True
    # Another browser with the used link cannot reach the opt-out page.
    assert app.test_client().get(f"{link.url}/stop").status_code == 404


@pytest.fixture
def limited(app_overrides, monkeypatch):
    """A limit of three failed look-ups a minute, with the pages' clock held in the middle of
    one minute: requests that straddled a minute boundary would be counted in two windows."""
    now = utcnow()
    held = now.replace(second=30, microsecond=0)
    monkeypatch.setattr(hooks, "utcnow", lambda: held)
    return {**app_overrides, "link_rate_limit": 3}


def test_too_many_link_requests_from_one_address_get_a_kind_429(limited, make_link):
    app = create_app(limited)
    client = app.test_client()
    statuses = [
        client.get("/q/unknown-token-aaaaaaaaaaaaaaaa", headers={"Accept-Language": "fi"})
        for _ in range(4)
    ]
    assert [r.status_code for r in statuses] == [404, 404, 404, 429]
    html = statuses[-1].get_data(as_text=True)
    assert "Odota hetki" in html
    assert int(statuses[-1].headers["Retry-After"]) >= 1
    app.extensions["pro_db"]["engine"].dispose()


def test_the_limit_holds_across_workers(limited):
    workers = [create_app(limited), create_app(limited)]
    statuses = [
        workers[i % 2].test_client().get("/q/xxxxxxxxxxxxxxxxxxxxxxx").status_code for i in range(5)
    ]
    assert statuses == [404, 404, 404, 429, 429]
    with workers[0].app_context():
        buckets = db.session.scalars(select(RateLimitCounter.bucket)).all()
    assert len(buckets) == 1
    assert "127.0.0.1" not in buckets[0]  # only a keyed hash of the address is stored
    for app in workers:
        app.extensions["pro_db"]["engine"].dispose()


def test_behind_a_trusted_proxy_each_client_address_has_its_own_limit(limited):
    app = create_app({**limited, "trusted_proxy_count": 1})
    client = app.test_client()
    for _ in range(3):
        client.get("/q/xxxxxxxxxxxxxxxxxxxxxxxx", headers={"X-Forwarded-For": "192.0.2.1"})
    blocked = client.get("/q/xxxxxxxxxxxxxxxxxxxxxxxx", headers={"X-Forwarded-For": "192.0.2.1"})
    other = client.get("/q/xxxxxxxxxxxxxxxxxxxxxxxx", headers={"X-Forwarded-For": "192.0.2.2"})
    assert (blocked.status_code, other.status_code) == (429, 404)
    app.extensions["pro_db"]["engine"].dispose()


def test_without_a_trusted_proxy_a_forged_forwarded_header_does_not_escape_the_limit(limited):
    app = create_app(limited)
    client = app.test_client()
    statuses = [
        client.get(
            "/q/xxxxxxxxxxxxxxxxxxxxxxxx", headers={"X-Forwarded-For": f"192.0.2.{i}"}
        ).status_code
        for i in range(4)
    ]
    assert statuses[-1] == 429
    app.extensions["pro_db"]["engine"].dispose()


def test_a_patients_own_pages_are_never_limited_and_their_answers_are_kept(limited, app_overrides):
    """The probe's case: a patient's POST answered 429 and lost the page's answers. Only failed
    look-ups count now, so a valid link goes on working behind an address full of guesses."""
    from pages import csrf_of

    app = create_app(limited)
    client = app.test_client()
    with app.app_context():
        from pro_service.clock import utcnow
        from pro_service.scheduling.assessments import current_token, local_today, update_windows

        from builders import build_patient, build_site

        now = utcnow()
        site = build_site(db.session, now=now, code="TEST")
        patient = build_patient(
            app,
            db.session,
            now=now,
            site=site,
            study_id="T-1",
            phone=None,
            inclusion_date=local_today(site, now),
        )
        update_windows(db.session, now=now, vault=app.extensions["vault"])
        token = current_token(patient.assessments[0], app.extensions["vault"])
        assessment_id = patient.assessments[0].id
        db.session.commit()
    guesses = [client.get("/q/xxxxxxxxxxxxxxxxxxxxxxxx").status_code for _ in range(4)]
    assert guesses == [404, 404, 404, 429]  # the address is over its limit for guesses
    for _ in range(5):  # more requests than the limit, all the patient's own
        page = client.get(f"/q/{token}/s/1")
        assert page.status_code == 200
    saved = client.post(
        f"/q/{token}/s/1",
        data={"csrf_token": csrf_of(page.text), "screen": "1", "nav": "next", "q1": "2"},
    )
    assert saved.status_code == 303
    with app.app_context():
        from pro_service.models import Response

        stored = db.session.scalars(
            select(Response.code).where(Response.assessment_id == assessment_id)
        ).all()
    assert stored == [2]
    app.extensions["pro_db"]["engine"].dispose()
