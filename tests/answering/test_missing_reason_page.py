"""A nurse records why a missed time point has no answers, on the time point's page."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from pro_service.clock import utcnow
from pro_service.extensions import db
from pro_service.models import Assessment, AuditEvent, MessageStatus, OutboxMessage

from pages import csrf_of, read


@pytest.fixture
def missed(app, staff_study) -> int:
    """UPP-002's first time point, missed; its invitation and reminder never arrived."""
    now = utcnow()
    with app.app_context():
        assessment = db.session.scalars(
            select(Assessment)
            .where(Assessment.patient_id == staff_study.patients["UPP-002"])
            .order_by(Assessment.due_date)
        ).first()
        assessment.status = "expired"
        for kind in ("invitation", "reminder"):
            db.session.add(
                OutboxMessage(
                    patient_id=assessment.patient_id,
                    assessment_id=assessment.id,
                    kind=kind,
                    language="en",
                    scheduled_for=now,
                    status=MessageStatus.UNDELIVERED.value,
                    attempts=1,
                    created_at=now,
                    updated_at=now,
                )
            )
        db.session.commit()
        return assessment.id


def _post(client, assessment_id, **data):
    page = client.get(f"/staff/assessments/{assessment_id}?lang=en")
    return client.post(
        f"/staff/assessments/{assessment_id}/missing-reason",
        data={"csrf_token": csrf_of(page.text), **data},
    )


def _stored(app, assessment_id):
    return read(
        app,
        lambda s: (
            s.get(Assessment, assessment_id).missing_reason,
            s.get(Assessment, assessment_id).missing_reason_text,
        ),
    )


def test_the_page_proposes_the_reason_the_sms_records_show(sign_in, missed):
    page = sign_in("nurse_upp").get(f"/staff/assessments/{missed}?lang=en").text
    assert "No reason recorded yet" in page
    assert "Proposed from the SMS records: Message not delivered." in page
    (checked,) = re.findall(r'<input checked [^>]*value="([^"]+)"', page)
    assert checked == "not-delivered"  # pre-selected, for the nurse to confirm


def test_a_nurse_records_and_corrects_a_reason_audited(app, sign_in, missed):
    client = sign_in("nurse_upp")
    refused = _post(client, missed, reason="other", text="  ")
    assert refused.status_code == 400
    assert "needs a text saying what happened" in refused.text.split('id="text-errors"', 1)[1]
    assert _stored(app, missed) == (None, None)

    saved = _post(client, missed, reason="too-ill")
    assert saved.status_code == 303
    page = client.get(saved.headers["Location"]).text
    assert "Recorded reason: Too ill to answer" in page
    assert "The reason is recorded." in page
    assert _stored(app, missed) == ("too-ill", None)

    unexplained = _post(client, missed, reason="in-hospital")
    assert unexplained.status_code == 400
    assert "needs a reason for the correction" in unexplained.text
    assert _stored(app, missed) == ("too-ill", None)
    corrected = _post(client, missed, reason="in-hospital", correction="mixed up two patients")
    assert corrected.status_code == 303
    assert _stored(app, missed) == ("in-hospital", None)

    events = read(
        app,
        lambda s: [
            (e.before, e.after, e.reason, e.actor_type)
            for e in s.scalars(
                select(AuditEvent)
                .where(AuditEvent.action == "assessment.missing_reason")
                .order_by(AuditEvent.id)
            )
        ],
    )
    assert events == [
        (None, {"missing_reason": "too-ill", "text": None}, None, "staff"),
        (
            {"missing_reason": "too-ill", "text": None},
            {"missing_reason": "in-hospital", "text": None},
            "mixed up two patients",
            "staff",
        ),
    ]


def test_an_unknown_reason_is_refused_and_others_cannot_record(app, sign_in, missed):
    client = sign_in("nurse_upp")
    refused = _post(client, missed, reason="lost")
    assert refused.status_code == 400
    assert "Unknown missing reason" in refused.text
    assert _stored(app, missed) == (None, None)
    # The investigator reads the page without the form; another site's nurse gets 404.
    investigator = sign_in("investigator_upp").get(f"/staff/assessments/{missed}?lang=en").text
    assert "No reason recorded yet" in investigator
    section = investigator.split('id="missing-reason-title"', 1)[1].split("</section>", 1)[0]
    assert "<form" not in section
    other = sign_in("nurse_hel")
    assert other.get(f"/staff/assessments/{missed}").status_code == 404


def test_an_open_time_point_has_no_missing_reason_section(app, sign_in, staff_study):
    open_one = read(
        app,
        lambda s: s.scalars(
            select(Assessment.id).where(Assessment.patient_id == staff_study.patients["UPP-001"])
        ).first(),
    )
    page = sign_in("nurse_upp").get(f"/staff/assessments/{open_one}?lang=en").text
    assert "Why it is missing" not in page
