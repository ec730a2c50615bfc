"""A fake Twilio Messages API on 127.0.0.1, for running the real ``twilio`` library in tests.

Request and response shapes follow Twilio's OpenAPI description of the Messages API
(/2010-04-01/Accounts/{AccountSid}/Messages.json): form-encoded create answered by 201 and the
JSON message resource; list with To / DateSent> / PageSize / Page and paging fields; errors as
``{code, message, more_info, status}``.

Knobs: ``script`` (a queue of behaviours for the next create requests: an HTTP error with a
Twilio code, a timeout before or after the message is created), ``permanent`` (a code per
recipient), ``delay`` (seconds before every create answer: a slow provider; the message exists
from the moment the request arrives), ``rate_limit`` (creates per second answered with 429 above
it; off by default) with ``rate_limit_retry_after`` (the ``Retry-After`` header those 429s carry,
or None for none). ``count(to)`` counts messages per recipient; ``in_flight_peak`` is the most
create requests the fake was answering at one time.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

API = "/2010-04-01/Accounts/"


@dataclass
class Behaviour:
    """What to do with one create request."""

    kind: str  # "error", "timeout_after_create", "timeout_before_create"
    status: int = 500
    code: int | None = None
    seconds: float = 0.0
    retry_after: str | None = None


def error(status: int, code: int | None = None, retry_after: str | None = None) -> Behaviour:
    """An HTTP error with a Twilio code; ``retry_after`` is sent as the Retry-After header."""
    return Behaviour("error", status=status, code=code, retry_after=retry_after)


def timeout_after_create(seconds: float) -> Behaviour:
    """The message IS created, but the answer comes too late (the ambiguous case)."""
    return Behaviour("timeout_after_create", seconds=seconds)


def timeout_before_create(seconds: float) -> Behaviour:
    """Too slow, and the message is NOT created."""
    return Behaviour("timeout_before_create", seconds=seconds)


def _rfc2822(value: datetime) -> str:
    return format_datetime(value.astimezone(UTC), usegmt=False).replace("-0000", "+0000")


class FakeTwilio:
    def __init__(self, account_sid: str = "AC" + "f" * 32, auth_token: str = "fake-token"):
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.lock = threading.Lock()
        self.messages: list[dict[str, Any]] = []
        self.script: deque[Behaviour] = deque()
        self.permanent: dict[str, int] = {}
        self.delay = 0.0
        self.rate_limit: float | None = None
        self.rate_limit_retry_after: str | None = "1"
        self.in_flight = 0
        self.in_flight_peak = 0
        self.create_requests = 0
        self.list_requests = 0
        self._window_start = time.monotonic()
        self._window_count = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- control ---------------------------------------------------------------------------
    def start(self) -> FakeTwilio:
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def count(self, to: str) -> int:
        with self.lock:
            return sum(1 for m in self.messages if m["to"] == to)

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(m["to"] for m in self.messages)

    def bodies(self) -> Counter[str]:
        with self.lock:
            return Counter(m["body"] for m in self.messages)

    # --- behaviour -------------------------------------------------------------------------
    def next_behaviour(self) -> Behaviour | None:
        with self.lock:
            self.create_requests += 1
            if self.script:
                return self.script.popleft()
            if self.rate_limit is not None:
                now = time.monotonic()
                if now - self._window_start >= 1.0:
                    self._window_start, self._window_count = now, 0
                self._window_count += 1
                if self._window_count > self.rate_limit:
                    return error(429, 20429, retry_after=self.rate_limit_retry_after)
        return None

    def create(self, form: dict[str, str]) -> dict[str, Any]:
        now = datetime.now(UTC)
        message = {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": form.get("Body", ""),
            "date_created": _rfc2822(now),
            "date_sent": None,
            "date_updated": _rfc2822(now),
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": "SM" + uuid.uuid4().hex,
            "status": "queued" if form.get("MessagingServiceSid") is None else "accepted",
            "subresource_uris": {},
            "to": form.get("To"),
            "uri": "",
            "_created": now,
            "_status_callback": form.get("StatusCallback"),
        }
        message["uri"] = f"{API}{self.account_sid}/Messages/{message['sid']}.json"
        with self.lock:
            self.messages.append(message)
        return message


def public(message: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if not k.startswith("_")}


class _Handler(BaseHTTPRequestHandler):
    server_fake: FakeTwilio
    protocol_version = "HTTP/1.1"  # keep-alive, as the real API
    disable_nagle_algorithm = True  # headers and body go out at once, no delayed-ACK stalls

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _send(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        body = json.dumps(payload).encode()
        try:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _error(
        self, status: int, code: int | None, message: str, retry_after: str | None = None
    ) -> None:
        self._send(
            status,
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
            headers=None if retry_after is None else {"Retry-After": retry_after},
        )

    def _authorised(self) -> bool:
        fake = self.server_fake
        expected = base64.b64encode(f"{fake.account_sid}:{fake.auth_token}".encode()).decode()
        if self.headers.get("Authorization") != f"Basic {expected}":
            self._error(401, 20003, "Authenticate")
            return False
        return True

    def _collection(self) -> bool:
        return urlparse(self.path).path == f"{API}{self.server_fake.account_sid}/Messages.json"

    def do_POST(self) -> None:
        fake = self.server_fake
        length = int(self.headers.get("Content-Length", "0"))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if not self._authorised():
            return
        if not self._collection():
            self._error(404, 20404, "The requested resource was not found")
            return
        if not form.get("To") or not form.get("Body"):
            self._error(400, 21604, "A 'To' phone number and a 'Body' are required.")
            return
        if not form.get("From") and not form.get("MessagingServiceSid"):
            self._error(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required.")
            return
        with fake.lock:
            fake.in_flight += 1
            fake.in_flight_peak = max(fake.in_flight_peak, fake.in_flight)
        try:
            self._create(form)
        finally:
            with fake.lock:
                fake.in_flight -= 1

    def _create(self, form: dict[str, str]) -> None:
        fake = self.server_fake
        behaviour = fake.next_behaviour()
        if behaviour is not None and behaviour.kind == "error":
            self._error(
                behaviour.status,
                behaviour.code,
                f"injected error {behaviour.code}",
                retry_after=behaviour.retry_after,
            )
            return
        if behaviour is not None and behaviour.kind == "timeout_before_create":
            time.sleep(behaviour.seconds)
            self._error(500, None, "too late")
            return
        code = fake.permanent.get(form["To"])
        if code is not None:
            self._error(400, code, f"permanent error {code} for this number")
            return
        message = fake.create(form)
        if behaviour is not None and behaviour.kind == "timeout_after_create":
            time.sleep(behaviour.seconds)
        elif fake.delay:
            time.sleep(fake.delay)
        self._send(201, public(message))

    def do_GET(self) -> None:
        fake = self.server_fake
        if not self._authorised():
            return
        parsed = urlparse(self.path)
        if not self._collection():
            sid = parsed.path.rsplit("/", 1)[-1].removesuffix(".json")
            with fake.lock:
                found = [m for m in fake.messages if m["sid"] == sid]
            if not found:
                self._error(404, 20404, "The requested resource was not found")
            else:
                self._send(200, public(found[0]))
            return
        query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        with fake.lock:
            fake.list_requests += 1
            rows = list(fake.messages)
        if "To" in query:
            rows = [m for m in rows if m["to"] == query["To"]]
        if "DateSent>" in query:  # Twilio filters on the GMT day
            day = query["DateSent>"][:10]
            rows = [m for m in rows if m["_created"].date().isoformat() >= day]
        rows.sort(key=lambda m: m["_created"], reverse=True)
        page_size = int(query.get("PageSize", "50"))
        page = int(query.get("Page", "0"))
        chunk = rows[page * page_size : (page + 1) * page_size]
        base = f"{API}{fake.account_sid}/Messages.json"

        def uri(number: int) -> str:
            params = {k: v for k, v in query.items() if k not in ("Page", "PageToken")}
            params.update({"PageSize": str(page_size), "Page": str(number)})
            return f"{base}?{urlencode(params)}"

        more = (page + 1) * page_size < len(rows)
        self._send(
            200,
            {
                "messages": [public(m) for m in chunk],
                "end": page * page_size + max(0, len(chunk) - 1),
                "first_page_uri": uri(0),
                "next_page_uri": uri(page + 1) if more else None,
                "previous_page_uri": uri(page - 1) if page > 0 else None,
                "page": page,
                "page_size": page_size,
                "start": page * page_size,
                "uri": uri(page),
            },
        )
