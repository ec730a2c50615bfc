"""Logs never hold a patient's phone number or link token, at any level.

Two measures, set up once by the app factory:
- The twilio library logs every request's parameters (``To: +4670...``) at INFO and urllib3 its
  URLs at DEBUG; their loggers are held at WARNING whatever the service's level.
- Every log record of the process, from any library, is built as a :class:`RedactedLogRecord`:
  its message has link paths (``/q/<token>``, and staff set-password links
  ``/staff/set-password/<token>``) and phone numbers in E.164 form (also URL-encoded)
  replaced before any handler sees it, including Flask's "Exception on /q/<token>/s/1 [POST]".
"""

from __future__ import annotations

import logging
import re

#: Loggers that write request parameters, URLs or bodies (urllib3 carries the twilio library's
#: requests and logs each URL, query string included, at DEBUG).
CHATTY_LOGGERS = ("twilio", "twilio.http_client", "urllib3")

_LINK = re.compile(r"/q/[^/\s?#\"'<>]+")
_PASSWORD_LINK = re.compile(r"/set-password/[^/\s?#\"'<>]+")
_PHONE = re.compile(r"(?:\+|%2[Bb])[1-9][0-9]{6,14}\b")


def redact(text: str) -> str:
    """``text`` with link tokens and E.164 phone numbers replaced."""
    if "/q/" in text:
        text = _LINK.sub("/q/<link>", text)
    if "/set-password/" in text:
        text = _PASSWORD_LINK.sub("/set-password/<link>", text)
    if "+" in text or "%2" in text:
        text = _PHONE.sub("<phone>", text)
    return text


class RedactedLogRecord(logging.LogRecord):
    def getMessage(self) -> str:  # noqa: N802  (logging's name)
        return redact(super().getMessage())


def install() -> None:
    """Idempotent: the record factory for the whole process and the chatty loggers' level."""
    if logging.getLogRecordFactory() is not RedactedLogRecord:
        logging.setLogRecordFactory(RedactedLogRecord)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
