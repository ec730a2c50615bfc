"""Concurrent dispatch: one scheduler process keeps a bounded number of SMS in flight.

A provider call mostly waits on the network (Twilio answers in a few hundred milliseconds), so
one process sends with a pool of ``size`` threads. The loop claims only as many due messages as
it has free senders, hands each claimed message to a free sender at once, and claims again as
soon as one finishes: claiming is continuous, and no message waits in a claimed batch while
others are sent (its lease covers its own call: see ``dispatch.send_claimed``).

Every guarantee of :mod:`.dispatch` holds per message, whatever the pool does: a message is
claimed atomically before it is sent (two processes never send one message twice), its lease is
renewed when its call starts, and a message left ``sending`` by a crash is settled by
reconciliation.

Twilio's limits: a 429 puts the message back with the provider's ``Retry-After`` and pauses
all claiming in this process for that long (:class:`RateLimitPause`, kept across runs), while
calls already in flight finish.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime

from sqlalchemy.orm import Session

from .dispatch import Dispatcher, DispatchSummary, claim_due, send_claimed

log = logging.getLogger(__name__)

DEFAULT_POOL_SIZE = 8
#: A rate-limit pause up to this long is waited out within a run; a longer one ends the run.
MAX_PAUSE_IN_RUN = 30.0


class RateLimitPause:
    """When this process may claim again after a 429 (monotonic clock; shared by runs)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until = 0.0

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, time.monotonic() + seconds)

    def remaining(self) -> float:
        with self._lock:
            return max(0.0, self._until - time.monotonic())


def dispatch_concurrently(
    make_session: Callable[[], Session],
    dispatcher: Dispatcher,
    *,
    clock: Callable[[], datetime],
    size: int = DEFAULT_POOL_SIZE,
    pause: RateLimitPause | None = None,
    stop: threading.Event | None = None,
) -> DispatchSummary:
    """Send due messages with up to ``size`` provider calls in flight, until none are due.

    Returns when nothing is due and nothing is in flight, when a rate limit pauses claiming for
    longer than MAX_PAUSE_IN_RUN and nothing is in flight (a shorter pause is waited out), or
    when ``stop`` is
    set (the calls in flight are finished and recorded first). Each message is sent in its own
    session from ``make_session``; ``clock`` gives the ``now`` of each claim and each send.
    """
    if size < 1:
        raise ValueError(f"the dispatch pool needs at least one sender, not {size}")
    pause = pause or RateLimitPause()
    total = DispatchSummary()
    lock = threading.Lock()

    def send_one(message_id: int) -> None:
        try:
            with make_session() as session:
                summary = send_claimed(session, dispatcher, now=clock(), message_id=message_id)
        except Exception:
            # Left claimed: reconciliation decides after the lease, never a blind resend.
            log.exception("dispatch of message %s failed; it will be reconciled", message_id)
            return
        if summary.rate_limit_wait is not None:
            pause.pause(summary.rate_limit_wait.total_seconds())
        with lock:
            total.add(summary)

    in_flight: set[Future[None]] = set()
    with ThreadPoolExecutor(max_workers=size, thread_name_prefix="sms-send") as senders:
        while True:
            stopping = stop is not None and stop.is_set()
            paused = pause.remaining()
            claimed: list[int] = []
            free = size - len(in_flight)
            if free > 0 and not stopping and not paused:
                with make_session() as session:
                    claimed = claim_due(
                        session,
                        now=clock(),
                        worker=dispatcher.worker,
                        limit=free,
                        lease=dispatcher.lease,
                    )
                total.claimed += len(claimed)
                in_flight.update(senders.submit(send_one, message_id) for message_id in claimed)
            if not in_flight:
                if paused and not stopping and paused <= MAX_PAUSE_IN_RUN:
                    (stop or threading.Event()).wait(paused)  # a short rate limit: wait it out
                    continue
                break  # nothing due, stopping, or a long pause (the next run goes on)
            if free > 0 and not claimed and not paused and not stopping:
                # Nothing due at the moment: wait for a sender to finish (its message may have
                # been put back), but look again now and then for messages falling due.
                done, in_flight = wait(in_flight, timeout=1.0, return_when=FIRST_COMPLETED)
            else:
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
    return total
