"""Twilio's webhooks: delivery status callbacks and inbound SMS (STOP/START).

Every request must carry a valid ``X-Twilio-Signature``, computed over the public address
(``PRO_PUBLIC_BASE_URL`` + path + query): behind a proxy ``request.url`` is the internal address
and would never match. A bad or missing signature gets 403 and changes nothing.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, current_app, request
from twilio.request_validator import RequestValidator, get_signature_algorithm
from twilio.twiml.messaging_response import MessagingResponse

from ...clock import utcnow
from ...extensions import csrf, db
from ...messaging.events import UnknownStatus, apply_status_callback, handle_inbound
from ..numbers import whole_number

log = logging.getLogger(__name__)

bp = Blueprint("twilio", __name__, url_prefix="/twilio")
csrf.exempt(bp)


def public_url() -> str:
    """The address Twilio called, as the public sees it."""
    settings = current_app.config["PRO_SETTINGS"]
    url: str = settings.public_base_url + request.path
    if request.query_string:
        url += "?" + request.query_string.decode("utf-8")
    return url


@bp.before_request
def _check_signature() -> None:
    settings = current_app.config["PRO_SETTINGS"]
    if not settings.twilio_auth_token:
        abort(403, "Twilio webhooks are not configured (PRO_TWILIO_AUTH_TOKEN is not set)")
    signature = request.headers.get("X-Twilio-Signature", "")
    algorithm = get_signature_algorithm(
        request.headers.get("X-Twilio-Webhooks-Signature-Settings", "")
    )
    validator = RequestValidator(settings.twilio_auth_token)
    if not signature or not validator.validate(public_url(), request.form, signature, algorithm):
        log.warning("Twilio webhook %s refused: bad signature", request.path)
        abort(403, "invalid X-Twilio-Signature")


@bp.post("/status")
def status_callback() -> tuple[str, int]:
    sid = request.form.get("MessageSid", "").strip()
    status = request.form.get("MessageStatus", "").strip()
    if not sid or not status:
        abort(400, "MessageSid and MessageStatus are required")
    message_id = whole_number(request.args.get("m", ""))
    try:
        result = apply_status_callback(
            db.session,
            now=utcnow(),
            sid=sid,
            provider_status=status,
            error_code=request.form.get("ErrorCode") or None,
            message_id=message_id,
        )
    except UnknownStatus as exc:
        abort(400, str(exc))
    db.session.commit()
    if not result.found:
        log.warning("status callback for an unknown message %s", sid)
    return "", 204


@bp.post("/inbound")
def inbound_sms() -> Response:
    from_number = request.form.get("From", "").strip()
    if not from_number:
        abort(400, "From is required")
    result = handle_inbound(
        db.session,
        now=utcnow(),
        vault=current_app.extensions["vault"],
        from_number=from_number,
        body=request.form.get("Body", ""),
        provider_sid=request.form.get("MessageSid", "").strip()[:64] or None,
    )
    db.session.commit()
    reply = MessagingResponse()
    if result.language is not None and result.action in ("opted_out", "opted_in"):
        kind = "opt_out" if result.action == "opted_out" else "opt_in"
        reply.message(current_app.extensions["message_texts"].render(kind, result.language))
    return Response(str(reply), mimetype="application/xml")
