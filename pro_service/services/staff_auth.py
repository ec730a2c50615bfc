"""Staff sign-in: passwords (argon2id, rehashed on sign-in) and server-side sessions.

A session row exists from the moment the password is right; it is ``verified`` once every
required factor has been checked. The cookie holds only the random session token.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..audit import Actor, record
from ..models import StaffSession, StaffUser
from .staff import password_hasher

#: ``last_seen_at`` is written at most this often (a write per request would be wasteful).
TOUCH_EVERY = timedelta(seconds=60)
#: Hash checked when the email is unknown, so timing does not tell which emails exist.
_DUMMY_HASH = password_hasher.hash("not a real password, only for constant time")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalise_email(email: str) -> str:
    return email.strip().lower()


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


def mark_verified(session: Session, *, now: datetime, row: StaffSession) -> None:
    row.verified = True
    row.last_seen_at = now
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


def end_other_sessions(session: Session, *, now: datetime, user: StaffUser, keep: int) -> None:
    """End every session of ``user`` but ``keep`` (after a password change)."""
    session.execute(
        update(StaffSession)
        .where(
            StaffSession.user_id == user.id,
            StaffSession.id != keep,
            StaffSession.ended_at.is_(None),
        )
        .values(ended_at=now)
    )
