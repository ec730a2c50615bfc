"""Twilio, through the official library, with a request timeout on every call.

``PRO_TWILIO_API_BASE_URL`` replaces the library's ``https://api.twilio.com`` (the ``api``
domain's ``base_url``), which is how tests run the real library against a fake server.

The backend is used by several dispatch threads at once: each thread gets its own client (its
own HTTP session and kept-alive connection), so the answer a thread reads - including a 429's
``Retry-After`` - is always the answer to its own request.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import requests
import urllib3
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from ..clock import utcnow
from ..settings import Settings
from .backends import (
    AmbiguousSmsError,
    PermanentSmsError,
    ProviderMessage,
    RateLimitedSmsError,
    SmsError,
    TransientSmsError,
)

#: The longest Retry-After honoured (a longer one is treated as this long, then asked again).
MAX_RETRY_AFTER = timedelta(hours=1)

# Error codes that say the patient's number cannot get our SMS (flag the patient for the nurses).
INVALID_NUMBER_CODES = frozenset(
    {
        21211,  # invalid 'To' number
        21214,  # 'To' number cannot be reached
        21217,  # number not valid
        21219,  # 'To' number not verified (trial accounts)
        21401,  # invalid phone number
        21407,  # region not supported
        21408,  # permission to send to this region not enabled
        21612,  # cannot route to this number
        21614,  # 'To' number is not a valid mobile number
        30005,  # unknown destination handset
        30006,  # landline or unreachable carrier
    }
)
OPTED_OUT_CODES = frozenset({21610})  # the number replied STOP to the provider


def classify_error_code(code: int | str | None) -> str | None:
    """``invalid`` or ``opted_out`` when a provider error code is about the number, else None."""
    try:
        number = int(code) if code is not None else None
    except ValueError:
        return None
    if number in INVALID_NUMBER_CODES:
        return "invalid"
    if number in OPTED_OUT_CODES:
        return "opted_out"
    return None


def parse_retry_after(value: str | None, *, now: datetime) -> timedelta | None:
    """A ``Retry-After`` header (seconds, or an HTTP date) as a wait, capped; None if absent or
    unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        wait = timedelta(seconds=int(text))
    else:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        wait = max(timedelta(0), when - now)
    return min(wait, MAX_RETRY_AFTER)


class _HttpClient(TwilioHttpClient):  # type: ignore[misc]
    """The library's client, remembering the ``Retry-After`` of the last 429 it received."""

    retry_after: str | None = None

    def request(self, *args: Any, **kwargs: Any) -> Any:
        self.retry_after = None
        response = super().request(*args, **kwargs)
        if response.status_code == 429:
            self.retry_after = response.headers.get("Retry-After")
        return response


class TwilioBackend:
    name = "twilio"

    def __init__(self, settings: Settings) -> None:
        if not settings.twilio_account_sid or not settings.twilio_auth_token:
            raise ValueError("the Twilio backend needs PRO_TWILIO_ACCOUNT_SID and AUTH_TOKEN")
        self._from = settings.twilio_from
        self._service = settings.twilio_messaging_service_sid
        self._account_sid = settings.twilio_account_sid
        self._auth_token = settings.twilio_auth_token
        self._timeout = settings.twilio_timeout_seconds
        self._base_url = settings.twilio_api_base_url
        self._local = threading.local()

    @property
    def _client(self) -> Client:
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            http = _HttpClient(timeout=self._timeout)
            client = Client(self._account_sid, self._auth_token, http_client=http)
            client.api.base_url = self._base_url
            self._local.client = client
            self._local.http = http
        return client

    def _rest_error(self, exc: TwilioRestException) -> SmsError:
        if exc.status == 429:
            http: _HttpClient = self._local.http
            wait = parse_retry_after(http.retry_after, now=utcnow())
            code = str(exc.code) if exc.code is not None else "429"
            return RateLimitedSmsError(code, exc.msg or "HTTP 429", retry_after=wait)
        return _rest_error(exc)

    def send(
        self, *, to: str, body: str, status_callback: str | None, sender: str | None = None
    ) -> ProviderMessage:
        kwargs: dict[str, str] = {"to": to, "body": body}
        if self._service:
            kwargs["messaging_service_sid"] = self._service
        if sender:
            kwargs["from_"] = sender  # a site's sender (in the messaging service's pool, if any)
        elif not self._service:
            kwargs["from_"] = self._from or ""
        if status_callback:
            kwargs["status_callback"] = status_callback
        try:
            message = self._client.messages.create(**kwargs)
        except TwilioRestException as exc:
            raise self._rest_error(exc) from exc
        except requests.exceptions.RequestException as exc:
            if _never_left(exc):
                raise TransientSmsError("connection", "Twilio could not be reached") from exc
            # A read timeout or a connection lost after the request went out: maybe created.
            raise AmbiguousSmsError(
                "timeout", f"no usable answer from Twilio ({exc.__class__.__name__})"
            ) from exc
        except TwilioException as exc:
            raise AmbiguousSmsError("provider", str(exc)) from exc
        return ProviderMessage(
            sid=str(message.sid),
            status=str(message.status),
            to=to,
            body=body,
            created_at=message.date_created,
            error_code=None if message.error_code is None else str(message.error_code),
        )

    def find_sent(self, *, to: str, since: datetime, body: str) -> ProviderMessage | None:
        try:
            # The API filters on the day; the exact instant and the body are checked here.
            candidates = self._client.messages.list(
                to=to, date_sent_after=since - timedelta(days=1), page_size=100
            )
        except TwilioRestException as exc:
            raise self._rest_error(exc) from exc
        except (requests.exceptions.RequestException, TwilioException) as exc:
            raise TransientSmsError("reconcile", f"cannot list messages: {exc}") from exc
        for message in candidates:
            created = message.date_created
            if message.body == body and (
                created is None or created >= since - timedelta(minutes=1)
            ):
                return ProviderMessage(
                    sid=str(message.sid),
                    status=str(message.status),
                    to=to,
                    body=body,
                    created_at=created,
                    error_code=None if message.error_code is None else str(message.error_code),
                )
        return None


def _never_left(exc: requests.exceptions.RequestException) -> bool:
    """True when the request surely did not reach Twilio (no connection was made)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        return isinstance(reason, urllib3.exceptions.NewConnectionError)
    return False


def _rest_error(exc: TwilioRestException) -> SmsError:
    code = str(exc.code) if exc.code is not None else str(exc.status)
    message = exc.msg or f"HTTP {exc.status}"
    if exc.status == 429 or exc.status >= 500:
        return TransientSmsError(code, message)
    problem = classify_error_code(exc.code)
    if problem is not None:
        return PermanentSmsError(code, message, recipient_problem=problem)
    if exc.status in (401, 403):
        # Our credentials, not the patient: retry (bounded) while the operator fixes them.
        return TransientSmsError(code, message)
    return PermanentSmsError(code, message)
