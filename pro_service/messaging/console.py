"""The development backend: every SMS is accepted at once and written to the log.

The link token is masked in the log (logs never hold tokens); the full text is on the
development-only outbox page (``/dev/outbox``).
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import datetime

from .backends import ProviderMessage

log = logging.getLogger(__name__)
_LINK_TOKEN = re.compile(r"(/q/)[A-Za-z0-9_-]+")


def mask_number(e164: str) -> str:
    return f"{'*' * max(0, len(e164) - 3)}{e164[-3:]}"


class ConsoleBackend:
    name = "console"

    def send(
        self, *, to: str, body: str, status_callback: str | None, sender: str | None = None
    ) -> ProviderMessage:
        sid = f"CONSOLE{uuid.uuid4().hex}"
        log.info(
            "SMS (console backend) %s to %s: %s",
            sid,
            mask_number(to),
            _LINK_TOKEN.sub(r"\1…", body),
        )
        return ProviderMessage(sid=sid, status="sent", to=to, body=body)

    def find_sent(self, *, to: str, since: datetime, body: str) -> ProviderMessage | None:
        # The console "sends" in the same instant it is called, so a message claimed by a
        # process that died before recording it was never logged: send it again.
        return None
