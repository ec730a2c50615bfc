"""One-time set-password links: how an account gets its first password, or a new one after a
forgotten password, without any admin ever typing another person's password.

An admin makes a link for an account and hands it over (it is shown once); the link works once,
for 72 hours. Only the SHA-256 of its token is stored. A new link for the same account
replaces any earlier unused one. Setting the password ends every session of the account.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..audit import Actor, record
from ..models import PasswordLink, StaffUser
from .accounts import StaffDataError, password_hasher
from .passwords import PasswordRejected, check_new_password
from .sign_in import end_other_sessions

LINK_VALID = timedelta(hours=72)


class PasswordLinkError(StaffDataError):
    """A link that cannot be used, or a password refused. ``reason``: unknown, used, expired,
    inactive, mismatch, or a reason of :class:`~.passwords.PasswordRejected`."""

    def __init__(self, field: str, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(field, message)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_link(session: Session, *, now: datetime, actor: Actor, user: StaffUser) -> str:
    """A new link token for ``user`` (earlier unused links stop working); audited."""
    replaced = session.execute(
        update(PasswordLink)
        .where(PasswordLink.user_id == user.id, PasswordLink.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session="fetch")
    ).rowcount  # type: ignore[attr-defined]
    token = secrets.token_urlsafe(32)
    session.add(
        PasswordLink(
            token_hash=_digest(token),
            user_id=user.id,
            created_by=int(actor.id) if actor.type == "staff" and actor.id else None,
            created_at=now,
            expires_at=now + LINK_VALID,
        )
    )
    session.flush()
    record(
        session,
        now=now,
        actor=actor,
        action="user.password_link_issued",
        object_type="staff_user",
        object_id=user.id,
        after={"valid_until": (now + LINK_VALID).isoformat(), "earlier_links_ended": replaced},
    )
    return token


def find_link(session: Session, *, now: datetime, token: str) -> PasswordLink:
    """The usable link of ``token``; :class:`PasswordLinkError` says why it is not."""
    link = session.scalar(select(PasswordLink).where(PasswordLink.token_hash == _digest(token)))
    if link is None:
        raise PasswordLinkError("token", "unknown", "this link is not valid")
    if link.used_at is not None:
        raise PasswordLinkError("token", "used", "this link has been used or replaced")
    if now >= link.expires_at:
        raise PasswordLinkError("token", "expired", "this link has expired")
    if not link.user.is_active:
        raise PasswordLinkError("token", "inactive", "this account is deactivated")
    return link


def set_password(
    session: Session, *, now: datetime, token: str, password: str, repeated: str
) -> StaffUser:
    """Set the password of the link's account and use the link up; ends the account's sessions.

    Raises :class:`PasswordLinkError`; nothing changes then (the link stays usable after a
    refused password).
    """
    link = find_link(session, now=now, token=token)
    user = link.user
    try:
        check_new_password(password, context=(user.email, user.display_name))
    except PasswordRejected as exc:
        raise PasswordLinkError("password", exc.reason, str(exc)) from exc
    if password != repeated:
        raise PasswordLinkError("repeat_password", "mismatch", "the two passwords differ")
    # Used up atomically: of two tabs posting the same link, one wins.
    claimed = session.execute(
        update(PasswordLink)
        .where(PasswordLink.id == link.id, PasswordLink.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session="fetch")
    ).rowcount  # type: ignore[attr-defined]
    if claimed != 1:
        raise PasswordLinkError("token", "used", "this link has been used or replaced")
    user.password_hash = password_hasher.hash(password)
    user.password_changed_at = now
    ended = end_other_sessions(session, now=now, user=user, keep=None)
    record(
        session,
        now=now,
        actor=Actor.staff(user.id),
        action="staff.password_set_by_link",
        object_type="staff_user",
        object_id=user.id,
        after={"link_id": link.id, "sessions_ended": ended},
    )
    return user
