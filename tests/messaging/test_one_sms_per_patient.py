"""One SMS per patient per sending pass: time points that open together (baseline and "before
surgery" when the operation is ten days after inclusion) share one invitation, whose link leads
through both: the thank-you page of the first goes on to the next. Each keeps its own link and
reminders. On SQLite and PostgreSQL, with the scheduler's invitation job."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from pro_service.audit import Actor
from pro_service.clock import utcnow
from pro_service.extensions import db
from pro_service.messaging.outbox import queue_invitations
from pro_service.models import OutboxMessage
from pro_service.scheduling.assessments import current_token, local_today, update_windows

from builders import build_patient, build_site
from pages import csrf_of


def _register(app, session, site, study_id, *, surgery_in_days):  # type: ignore[no-untyped-def]
    now = utcnow()
    today = local_today(site, now)
    return build_patient(
        app,
        session,
        now=now,
        actor=Actor.operator("tests"),
        site=site,
        study_id=study_id,
        phone="070-174 06 20" if study_id.endswith("1") else "070-174 06 21",
        language="en",
        inclusion_date=today,
        surgery_date=None if surgery_in_days is None else today + timedelta(days=surgery_in_days),
    )


def test_time_points_opening_together_share_one_sms_whose_link_leads_through_both(app, client):
    with app.app_context():
        session = db.session
        now = utcnow()
        site = build_site(session, now=now, code="SE-LUN", sending_start="00:00")
        both = _register(app, session, site, "LUN-001", surgery_in_days=10)
        alone = _register(app, session, site, "LUN-002", surgery_in_days=None)
        update_windows(session, now=now, vault=app.extensions["vault"])
        states = {a.timepoint: a.status for a in both.assessments}
        assert (states["baseline"], states["preop"]) == ("open", "open")
        queued = queue_invitations(session, now=now, schedule=app.extensions["schedule"])
        session.commit()
        assert queued.queued == 2  # one SMS per patient

        def invitations(patient):  # type: ignore[no-untyped-def]
            return session.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.patient_id == patient.id, OutboxMessage.kind == "invitation"
                )
            ).all()

        baseline, preop = (
            next(a for a in both.assessments if a.timepoint == key) for key in ("baseline", "preop")
        )
        (shared,) = invitations(both)
        assert shared.assessment_id == baseline.id  # the earliest due
        assert [m.assessment_id for m in invitations(alone)] == [alone.assessments[0].id]
        # Both are announced; each keeps its own reminders.
        assert baseline.invitation_queued_at is not None and preop.invitation_queued_at is not None
        assert baseline.next_reminder_on is not None and preop.next_reminder_on is not None
        # A second pass queues nothing more.
        again = queue_invitations(session, now=now, schedule=app.extensions["schedule"])
        assert again.queued == 0
        first = current_token(baseline, app.extensions["vault"])
        second = current_token(preop, app.extensions["vault"])
        session.commit()

    # The patient follows the SMS link, submits, and the thank-you page leads on.
    review = client.get(f"/q/{first}/review").get_data(as_text=True)
    client.post(f"/q/{first}/submit", data={"csrf_token": csrf_of(review)})
    thanks = client.get(f"/q/{first}/thanks?lang=en").get_data(as_text=True)
    assert "Another questionnaire is waiting for you now: Before surgery." in thanks
    assert f'href="/q/{second}/welcome"' in thanks
    assert client.get(f"/q/{second}/welcome").status_code == 200
    # After the second, nothing is left: the usual thank-you.
    review = client.get(f"/q/{second}/review").get_data(as_text=True)
    client.post(f"/q/{second}/submit", data={"csrf_token": csrf_of(review)})
    last = client.get(f"/q/{second}/thanks?lang=en").get_data(as_text=True)
    assert "You can close this page." in last and "Another questionnaire" not in last


def test_when_the_shared_sms_is_cancelled_the_other_time_point_gets_its_own(app):
    """Both open at 21:00, their one SMS waits for the sending hours; a nurse enters the
    baseline from a paper form before then, which cancels that SMS: "before surgery" is
    announced in the next pass, with its own link."""
    from pro_service.answering.responses import complete_assessment

    with app.app_context():
        session = db.session
        now = utcnow()
        site = build_site(session, now=now, code="SE-LUN")
        patient = _register(app, session, site, "LUN-001", surgery_in_days=10)
        update_windows(session, now=now, vault=app.extensions["vault"])
        queue_invitations(session, now=now, schedule=app.extensions["schedule"])
        session.commit()
        baseline, preop = (
            next(a for a in patient.assessments if a.timepoint == key)
            for key in ("baseline", "preop")
        )
        complete_assessment(
            session,
            now=now,
            assessment=baseline,
            registry=app.extensions["instruments"],
            language="en",
            actor=Actor("patient", str(patient.id)),
        )
        session.commit()
        later = now + timedelta(minutes=1)
        queue_invitations(session, now=later, schedule=app.extensions["schedule"])
        session.commit()
        messages = session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.patient_id == patient.id)
            .order_by(OutboxMessage.id)
        ).all()
        assert [(m.assessment_id, m.kind, m.status) for m in messages] == [
            (baseline.id, "invitation", "cancelled"),
            (preop.id, "invitation", "pending"),
        ]
