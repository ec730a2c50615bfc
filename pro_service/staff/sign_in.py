"""Staff sign-in: passwords (argon2id, rehashed on sign-in), throttling and server-side sessions.

A session row exists from the moment the password is right; it is ``verified`` once every
required factor has been checked. The cookie holds only the random session token.

Throttling (password, second-factor code, current password on the account page) is kept in
``rate_limit_counters``, so it holds across web workers, on its own autocommit connection, so a
count survives the request's rollback:
- Per account (the normalised email, whether or not such an account exists, so the answer does
  not tell): every attempt is counted *before* it is checked (:func:`reserve`, one atomic
  upsert), so of any number of parallel attempts at most ``ACCOUNT_LIMIT.requests`` per window
  reach the password check; the rest are refused until the window ends. A right password gives
  its count back (:func:`settle_success`).
- Per client address, failures only slow down: past ``ADDRESS_SLOW_AFTER`` failures in a window
  each further attempt from that address waits a little longer (at most
  ``ADDRESS_MAX_DELAY_SECONDS``), and is never refused. Staff behind a hospital's shared address
  are never locked out by someone else's guessing; each account still locks on its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, select, update
from sqlalchemy.orm import Session

from .. import rate_limit
from ..audit import Actor, record
from ..models import StaffSession, StaffUser
from .accounts import StaffDataError, password_hasher
from .passwords import PasswordRejected, check_new_password

#: ``last_seen_at`` is written at most this often (a write per request would be wasteful).
TOUCH_EVERY = timedelta(seconds=60)
#: Hash checked when the email is unknown, so timing does not tell which emails exist.
_DUMMY_HASH = password_hasher.hash("not a real password, only for constant time")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalise_email(email: str) -> str:
    return email.strip().lower()


# --- Throttling of failed attempts -----------------------------------------------------------

#: Attempts per account (normalised email) in one fixed window of 15 minutes.
ACCOUNT_LIMIT = rate_limit.Limit(requests=5, window_seconds=15 * 60)
#: Failed attempts per client address, counted in windows of 15 minutes: they only slow down.
ADDRESS_WINDOW = rate_limit.Limit(requests=30, window_seconds=15 * 60)
ADDRESS_SLOW_AFTER = ADDRESS_WINDOW.requests
ADDRESS_DELAY_STEP_SECONDS = 0.25
ADDRESS_MAX_DELAY_SECONDS = 3.0
#: Who is trying to sign in, as the audit log names them: never a password or a clear email.
ANONYMOUS = Actor("anonymous")


@dataclass(frozen=True)
class Attempt:
    """A sign-in attempt's counter buckets: keyed hashes of the email and the client address."""

    account: str
    address: str

    @classmethod
    def of(cls, *, email: str, address: str | None, secret: str) -> Attempt:
        return cls(
            account=rate_limit.bucket_for("staff-sign-in-account", normalise_email(email), secret),
            address=rate_limit.bucket_for("staff-sign-in-address", address or "", secret),
        )

    @property
    def audit_tag(self) -> dict[str, str]:
        """Short keyed hashes that let the audit log group attempts without naming anyone."""
        return {"account_hash": self.account[:16], "address_hash": self.address[:16]}


@dataclass(frozen=True)
class Reservation:
    """The outcome of :func:`reserve`: refused (seconds to wait) or go on after ``delay``."""

    wait_seconds: int | None
    delay_seconds: float


def address_delay(failures: int) -> float:
    """How long an attempt from an address with ``failures`` in this window waits."""
    over = failures - ADDRESS_SLOW_AFTER
    return (
        0.0 if over < 0 else min(ADDRESS_MAX_DELAY_SECONDS, (over + 1) * ADDRESS_DELAY_STEP_SECONDS)
    )


def reserve(connection: Connection, *, now: datetime, attempt: Attempt) -> Reservation:
    """Count this attempt for its account before it is checked (``connection``: autocommit).

    Atomic: parallel attempts each get their own count, and those past the limit are refused
    without checking anything. The address is only looked at, for the slow-down.
    """
    account = rate_limit.hit(connection, now=now, bucket=attempt.account, limit=ACCOUNT_LIMIT)
    address = rate_limit.peek(connection, now=now, bucket=attempt.address, limit=ADDRESS_WINDOW)
    return Reservation(
        wait_seconds=None if account.allowed else account.retry_after_seconds,
        delay_seconds=address_delay(address.count),
    )


def count_failure(connection: Connection, *, now: datetime, attempt: Attempt) -> None:
    """A reserved attempt failed: count it for the address (the account counted it already)."""
    rate_limit.hit(connection, now=now, bucket=attempt.address, limit=ADDRESS_WINDOW)


def settle_success(connection: Connection, *, now: datetime, attempt: Attempt) -> None:
    """A reserved attempt was right (e.g. the current password on the account page): its
    count goes back to the account."""
    rate_limit.release(connection, now=now, bucket=attempt.account, limit=ACCOUNT_LIMIT)


def forget_failures(connection: Connection, *, attempt: Attempt) -> None:
    """After a complete sign-in: forget this account's attempts (never the address's)."""
    rate_limit.clear(connection, bucket=attempt.account)


def user_id_for(session: Session, email: str) -> int | None:
    return session.scalar(select(StaffUser.id).where(StaffUser.email == normalise_email(email)))


def record_failure(
    session: Session, *, now: datetime, attempt: Attempt, user_id: int | None, step: str
) -> None:
    """Audit a failed attempt (``step``: password, code or current_password)."""
    record(
        session,
        now=now,
        # On the account page the user is signed in; at sign-in nobody is, yet.
        actor=Actor.staff(user_id) if step == "current_password" and user_id else ANONYMOUS,
        action="staff.sign_in_failed",
        object_type="staff_user" if user_id is not None else None,
        object_id=user_id,
        after={"step": step, **attempt.audit_tag},
    )


def record_throttled(
    session: Session, *, now: datetime, attempt: Attempt, user_id: int | None, step: str
) -> None:
    """Audit an attempt refused because of too many failures."""
    record(
        session,
        now=now,
        actor=ANONYMOUS,
        action="staff.sign_in_throttled",
        object_type="staff_user" if user_id is not None else None,
        object_id=user_id,
        after={"step": step, **attempt.audit_tag},
    )


def check_password(
    session: Session, *, now: datetime, email: str, password: str
) -> StaffUser | None:
    """The active user with this email and password, or None. Rehashes outdated hashes."""
    user = session.scalar(select(StaffUser).where(StaffUser.email == normalise_email(email)))
    if user is None or not user.is_active:
        with contextlib.suppress(VerificationError):
            password_hasher.verify(_DUMMY_HASH, password)
        return None
    try:
        password_hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if password_hasher.check_needs_rehash(user.password_hash):
        user.password_hash = password_hasher.hash(password)
    return user


@dataclass(frozen=True)
class NewSession:
    token: str
    row: StaffSession


def start_session(
    session: Session, *, now: datetime, user: StaffUser, verified: bool
) -> NewSession:
    token = secrets.token_urlsafe(32)
    row = StaffSession(
        token_hash=_digest(token),
        user_id=user.id,
        created_at=now,
        last_seen_at=now,
        verified=verified,
    )
    session.add(row)
    session.flush()
    return NewSession(token=token, row=row)


#: How long a two-factor code counts as fresh for the administration pages.
FRESH_SECOND_FACTOR = timedelta(minutes=15)


def mark_verified(
    session: Session, *, now: datetime, row: StaffSession, second_factor: bool = False
) -> None:
    """The sign-in is complete; ``second_factor``: a two-factor code was part of it."""
    row.verified = True
    row.last_seen_at = now
    if second_factor:
        row.second_factor_at = now
    user = row.user
    user.last_login_at = now
    record(
        session,
        now=now,
        actor=Actor.staff(user.id),
        action="staff.signed_in",
        object_type="staff_user",
        object_id=user.id,
    )


def second_factor_is_fresh(row: StaffSession, *, now: datetime) -> bool:
    """Whether this browser entered a two-factor code within :data:`FRESH_SECOND_FACTOR`."""
    at = row.second_factor_at
    return at is not None and timedelta(0) <= now - at <= FRESH_SECOND_FACTOR


def confirm_second_factor(session: Session, *, now: datetime, row: StaffSession) -> None:
    """A code was entered again (for the administration pages); audited."""
    row.second_factor_at = now
    record(
        session,
        now=now,
        actor=Actor.staff(row.user_id),
        action="staff.second_factor_confirmed",
        object_type="staff_user",
        object_id=row.user_id,
    )


def find_session(
    session: Session, *, now: datetime, token: str | None, idle: timedelta
) -> StaffSession | None:
    """The live session of this token (touching its ``last_seen_at``), or None.

    A session idle for longer than ``idle`` is ended here and is gone for good.
    """
    if not token:
        return None
    row = session.scalar(select(StaffSession).where(StaffSession.token_hash == _digest(token)))
    if row is None or row.ended_at is not None or not row.user.is_active:
        return None
    if now - row.last_seen_at > idle:
        row.ended_at = now
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
    return row


def end_session(session: Session, *, now: datetime, row: StaffSession, why: str) -> None:
    if row.ended_at is None:
        row.ended_at = now
        record(
            session,
            now=now,
            actor=Actor.staff(row.user_id),
            action="staff.signed_out",
            object_type="staff_user",
            object_id=row.user_id,
            after={"why": why},
        )


def end_other_sessions(
    session: Session, *, now: datetime, user: StaffUser, keep: int | None
) -> int:
    """End every session of ``user`` but ``keep`` (None: all of them); say how many."""
    conditions = [StaffSession.user_id == user.id, StaffSession.ended_at.is_(None)]
    if keep is not None:
        conditions.append(StaffSession.id != keep)
    result = session.execute(
        update(StaffSession)
        .where(*conditions)
        .values(ended_at=now)
        .execution_options(synchronize_session="fetch")
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


class PasswordChangeError(StaffDataError):
    """A password change refused; ``reason`` says why: wrong, unchanged, mismatch, or a
    reason of :class:`~.passwords.PasswordRejected` (too_short, too_long, common, guessable)."""

    def __init__(self, field: str, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(field, message)


def change_password(
    session: Session,
    *,
    now: datetime,
    user: StaffUser,
    current_password: str,
    new_password: str,
    repeated: str,
    keep: StaffSession,
) -> int:
    """Change ``user``'s password and end their other sessions; returns how many were ended.

    Raises :class:`PasswordChangeError` naming the field; nothing is changed then.
    """
    try:
        password_hasher.verify(user.password_hash, current_password)
    except (VerificationError, InvalidHashError) as exc:
        raise PasswordChangeError(
            "current_password", "wrong", "the current password is not right"
        ) from exc
    try:
        check_new_password(new_password, context=(user.email, user.display_name))
    except PasswordRejected as exc:
        raise PasswordChangeError("new_password", exc.reason, str(exc)) from exc
    if new_password != repeated:
        raise PasswordChangeError("repeat_password", "mismatch", "the two new passwords differ")
    if new_password == current_password:
        raise PasswordChangeError(
            "new_password", "unchanged", "the new password is the current one"
        )
    user.password_hash = password_hasher.hash(new_password)
    user.password_changed_at = now
    ended = end_other_sessions(session, now=now, user=user, keep=keep.id)
    record(
        session,
        now=now,
        actor=Actor.staff(user.id),
        action="staff.password_changed",
        object_type="staff_user",
        object_id=user.id,
        after={"other_sessions_ended": ended},
    )
    return ended
