"""Time-based one-time codes (TOTP, RFC 6238) as the second sign-in factor of staff accounts.

Available to everyone, required for admins. The secret is stored encrypted with the app's
:class:`~pro_service.crypto.Vault`. A code is accepted for its own 30-second time step and one
step either side (clock drift), and each time step only once per user: ``totp_last_step`` is
raised with a conditional ``UPDATE``, so two workers given the same code cannot both accept it.
"""

from __future__ import annotations

import hmac
import re
from datetime import datetime

import pyotp
import segno
from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from ..audit import Actor, record
from ..crypto import Vault
from ..models import Role, StaffUser
from .accounts import StaffDataError

STEP_SECONDS = 30
#: Time steps accepted either side of the current one.
DRIFT_STEPS = 1
ISSUER = "PRO Service"
_CODE = re.compile(r"^\d{6}$")


class TwoFactorError(StaffDataError):
    """A code or a two-factor change refused; ``reason`` says why (wrong, admin_required...)."""

    def __init__(self, field: str, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(field, message)


def new_secret() -> str:
    return pyotp.random_base32()


def is_enrolled(user: StaffUser) -> bool:
    return user.totp_secret_encrypted is not None


def is_required(user: StaffUser) -> bool:
    return user.role == Role.ADMIN.value


def grouped(secret: str) -> str:
    """The secret in groups of four characters, for typing into an app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def provisioning_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret, interval=STEP_SECONDS).provisioning_uri(
        name=email, issuer_name=ISSUER
    )


def qr_data_uri(uri: str) -> str:
    """The ``otpauth://`` URI as a QR code: an SVG ``data:`` URI for an ``<img>``."""
    return str(
        segno.make(uri, error="m").svg_data_uri(scale=5, border=4, dark="#000", light="#fff")
    )


def current_step(now: datetime) -> int:
    return int(now.timestamp()) // STEP_SECONDS


def matching_step(secret: str, code: str, now: datetime, *, after: int | None) -> int | None:
    """The time step (within the drift) whose code is ``code`` and that is later than ``after``."""
    code = re.sub(r"\s", "", code or "")
    if not _CODE.fullmatch(code):
        return None
    totp = pyotp.TOTP(secret, interval=STEP_SECONDS)
    now_step = current_step(now)
    found = None
    for step in range(now_step - DRIFT_STEPS, now_step + DRIFT_STEPS + 1):
        # Compare every candidate, so the time taken does not tell which one matched.
        if hmac.compare_digest(totp.generate_otp(step), code) and (after is None or step > after):
            found = step if found is None else found
    return found


def _claim_step(session: Session, user: StaffUser, step: int) -> bool:
    """Raise ``totp_last_step`` to ``step`` unless it is there already (atomically)."""
    result = session.execute(
        update(StaffUser)
        .where(
            StaffUser.id == user.id,
            or_(StaffUser.totp_last_step.is_(None), StaffUser.totp_last_step < step),
        )
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    if int(result.rowcount) != 1:  # type: ignore[attr-defined]
        return False
    user.totp_last_step = step
    return True


def check_code(
    session: Session, *, now: datetime, vault: Vault, user: StaffUser, code: str
) -> bool:
    """Whether ``code`` is ``user``'s current code, not used before. Uses it up if so."""
    if user.totp_secret_encrypted is None:
        return False
    secret = vault.decrypt(user.totp_secret_encrypted)
    session.refresh(user, ["totp_last_step"])
    step = matching_step(secret, code, now, after=user.totp_last_step)
    return step is not None and _claim_step(session, user, step)


def enrol(
    session: Session, *, now: datetime, vault: Vault, user: StaffUser, secret: str, code: str
) -> None:
    """Turn two-factor sign-in on with ``secret``, once ``code`` shows the app has it."""
    if is_enrolled(user):
        raise TwoFactorError("code", "enrolled", "two-factor sign-in is already on")
    step = matching_step(secret, code, now, after=None)
    if step is None:
        raise TwoFactorError("code", "wrong", "the code does not match")
    user.totp_secret_encrypted = vault.encrypt(secret)
    user.totp_last_step = step  # the confirming code cannot sign in again
    record(
        session,
        now=now,
        actor=Actor.staff(user.id),
        action="staff.two_factor_enabled",
        object_type="staff_user",
        object_id=user.id,
    )


def disable(session: Session, *, now: datetime, vault: Vault, user: StaffUser, code: str) -> None:
    """Turn two-factor sign-in off, with a current code; admins cannot."""
    if is_required(user):
        raise TwoFactorError("code", "admin_required", "admins must keep two-factor sign-in")
    if not check_code(session, now=now, vault=vault, user=user, code=code):
        raise TwoFactorError("code", "wrong", "the code does not match")
    user.totp_secret_encrypted = None
    record(
        session,
        now=now,
        actor=Actor.staff(user.id),
        action="staff.two_factor_disabled",
        object_type="staff_user",
        object_id=user.id,
    )


def reset(session: Session, *, now: datetime, actor: Actor, user: StaffUser) -> int:
    """An operator turns two-factor sign-in off after a lost phone; ends the user's sessions.

    Admins are asked to enrol again at their next sign-in. Returns how many sessions ended.
    """
    from .sign_in import end_other_sessions

    if not is_enrolled(user):
        raise TwoFactorError("email", "not_enrolled", f"{user.email} has no two-factor sign-in")
    user.totp_secret_encrypted = None
    user.totp_last_step = None
    ended = end_other_sessions(session, now=now, user=user, keep=None)
    record(
        session,
        now=now,
        actor=actor,
        action="staff.two_factor_reset",
        object_type="staff_user",
        object_id=user.id,
        after={"sessions_ended": ended},
    )
    return ended
