"""SMS backends: ``console`` (development: logged and shown on the outbox page) and ``twilio``.

A backend sends one text to one E.164 number and reports what happened in one of four ways:
a :class:`ProviderMessage` (accepted), :class:`TransientSmsError` (5xx, connection refused: safe
to retry later; :class:`RateLimitedSmsError` for a 429, with the provider's Retry-After),
:class:`AmbiguousSmsError` (a timeout after the request left: the message may exist, so it must
be reconciled before any resend) or :class:`PermanentSmsError` (this message will never go;
``recipient_problem`` says whether the number itself is at fault). A backend may be used by
several dispatch threads at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from ..settings import Settings


@dataclass(frozen=True)
class ProviderMessage:
    sid: str
    status: str  # the provider's status: queued, sent, delivered, failed...
    to: str
    body: str
    created_at: datetime | None = None
    error_code: str | None = None


class SmsError(Exception):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


class TransientSmsError(SmsError):
    """Nothing was sent; try again later (rate limit, server error, connection refused)."""


class RateLimitedSmsError(TransientSmsError):
    """The provider asks us to slow down (HTTP 429): nothing was sent and nothing is wrong with
    the message. ``retry_after``: how long the provider asked us to wait, when it said so."""

    def __init__(self, code: str, message: str, retry_after: timedelta | None = None) -> None:
        super().__init__(code, message)
        self.retry_after = retry_after


class AmbiguousSmsError(SmsError):
    """The request may or may not have created a message (a timeout after sending it)."""


class PermanentSmsError(SmsError):
    """The message will never be accepted. ``recipient_problem``: what the patient's number
    does (``invalid`` number or region, ``opted_out`` at the provider, or None: not the number)."""

    def __init__(self, code: str, message: str, recipient_problem: str | None = None) -> None:
        super().__init__(code, message)
        self.recipient_problem = recipient_problem


class SmsBackend(Protocol):
    name: str

    def send(
        self, *, to: str, body: str, status_callback: str | None, sender: str | None = None
    ) -> ProviderMessage:
        """Send one SMS (from ``sender``, the site's own sender, when given); raises one of the
        errors above."""

    def find_sent(self, *, to: str, since: datetime, body: str) -> ProviderMessage | None:
        """The message with this body sent to ``to`` at or after ``since``, if the provider has
        it (reconciliation after a crash or an ambiguous timeout). Raises SmsError when the
        provider cannot be asked."""


def make_backend(settings: Settings) -> SmsBackend:
    if settings.sms_backend == "twilio":
        from .twilio_backend import TwilioBackend

        return TwilioBackend(settings)
    from .console import ConsoleBackend

    return ConsoleBackend()
