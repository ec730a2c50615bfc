"""The development outbox: every queued SMS with its text, for trying the service on a laptop.

Only with PRO_ENV=development; everywhere else the page does not exist (404). It shows phone
numbers masked and links in full (development data only).
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template
from sqlalchemy import select

from ...extensions import db
from ...messaging.dispatch import render_body
from ...messaging.outbox import LINK_KINDS
from ...models import Assessment, OutboxMessage, Patient

bp = Blueprint("dev", __name__, url_prefix="/dev")


@bp.before_request
def _development_only() -> None:
    if current_app.config["PRO_SETTINGS"].env != "development":
        abort(404)


@bp.get("/outbox")
def outbox() -> str:
    from ...scheduler.jobs import dispatcher

    work = dispatcher(current_app._get_current_object())  # type: ignore[attr-defined]
    rows = db.session.execute(
        select(OutboxMessage, Patient, Assessment)
        .join(Patient, Patient.id == OutboxMessage.patient_id)
        .outerjoin(Assessment, Assessment.id == OutboxMessage.assessment_id)
        .order_by(OutboxMessage.scheduled_for.desc(), OutboxMessage.id.desc())
        .limit(500)
    ).all()
    messages = []
    for message, patient, assessment in rows:
        if message.kind in LINK_KINDS and (
            assessment is None or assessment.token_encrypted is None
        ):
            text = None
        else:
            text = render_body(work, message, assessment)
        messages.append(
            {
                "message": message,
                "patient": patient,
                "timepoint": None if assessment is None else assessment.timepoint,
                "text": text,
            }
        )
    return render_template("dev/outbox.html", messages=messages, backend=work.backend.name)
