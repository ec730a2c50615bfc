"""What an administrator does to staff accounts: create, change role and sites, deactivate and
reactivate, reset two-factor sign-in. Every change is audited with who, when, before and after.

``by`` is the administrator on the staff pages, or None for an operator at the command line.

Guard rails: the last active administrator cannot be deactivated or demoted; an administrator
cannot change their own role, sites or active state (no one raises their own rights, and no one
locks themselves out); a deactivated account's sessions end at once.

Errors are :class:`AdminError`: the form field at fault and an English message id with
``%(name)s`` placeholders, which the staff pages translate.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..audit import Actor, record
from ..models import MAX_ID, Role, Site, SiteMembership, StaffUser
from . import two_factor
from .accounts import NO_PASSWORD, StaffDataError, create_user
from .sign_in import end_other_sessions


def N_(message: str) -> str:  # noqa: N802 - gettext's name for "mark for translation"
    """Mark ``message`` for the translation catalog; the staff pages translate it."""
    return message


class AdminError(ValueError):
    """A change refused; nothing was changed. ``message`` is an English msgid."""

    def __init__(self, field: str, message: str, **params: object) -> None:
        self.field = field
        self.message = message
        self.params = params
        super().__init__(message % params if params else message)


ROLES = tuple(r.value for r in Role)


def _actor(by: StaffUser | None) -> Actor:
    """The admin on the staff pages, or (None) an operator at the command line."""
    return Actor.operator() if by is None else Actor.staff(by.id)


def account_values(user: StaffUser) -> dict[str, Any]:
    """What the audit trail records of an account, before and after a change."""
    return {
        "email": user.email,
        "display_name": user.display_name,
        "role": user.role,
        "sites": sorted(m.site.code for m in user.memberships),
        "all_sites": user.all_sites,
        "language": user.language,
        "is_active": user.is_active,
    }


def account_state(user: StaffUser) -> str:
    """deactivated, password_not_set (waiting for its set-password link) or active."""
    if not user.is_active:
        return "deactivated"
    return "password_not_set" if user.password_hash == NO_PASSWORD else "active"


def list_accounts(session: Session) -> list[StaffUser]:
    """Every account: active ones first, then by email."""
    return list(
        session.scalars(select(StaffUser).order_by(StaffUser.is_active.desc(), StaffUser.email))
    )


def get_account(session: Session, user_id: int) -> StaffUser | None:
    return session.get(StaffUser, user_id) if 1 <= user_id <= MAX_ID else None


def _sites(session: Session, site_ids: Sequence[int]) -> list[Site]:
    wanted = set(site_ids)
    if any(not 1 <= i <= MAX_ID for i in wanted):
        raise AdminError("sites", N_("A chosen site does not exist."))
    sites = list(session.scalars(select(Site).where(Site.id.in_(wanted)).order_by(Site.code)))
    if len(sites) != len(wanted):
        raise AdminError("sites", N_("A chosen site does not exist."))
    return sites


def _check_role_and_sites(role: str, sites: list[Site], all_sites: bool) -> None:
    if role not in ROLES:
        raise AdminError("role", N_("%(role)s is not a role."), role=role)
    if role == Role.NURSE.value and (all_sites or not sites):
        raise AdminError(
            "sites", N_("A research nurse belongs to one or more named sites, never all sites.")
        )


def _other_active_admins(session: Session, user: StaffUser) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(StaffUser)
            .where(
                StaffUser.role == Role.ADMIN.value,
                StaffUser.is_active.is_(True),
                StaffUser.id != user.id,
            )
        )
        or 0
    )


def create_account(
    session: Session,
    *,
    now: datetime,
    by: StaffUser | None,
    email: str,
    display_name: str,
    role: str,
    site_ids: Sequence[int],
    all_sites: bool,
    language: str,
) -> StaffUser:
    """A new account with no password yet (its owner sets one through a set-password link)."""
    sites = _sites(session, site_ids)
    _check_role_and_sites(role, sites, all_sites)
    try:
        return create_user(
            session,
            now=now,
            actor=_actor(by),
            email=email,
            password=None,
            role=role,
            sites=sites,
            all_sites=all_sites and role != Role.NURSE.value,
            display_name=display_name.strip(),
            language=language,
        )
    except StaffDataError as exc:
        if exc.field == "email" and "already exists" in str(exc):
            raise AdminError(
                "email", N_("An account with the email %(email)s already exists."), email=email
            ) from exc
        if exc.field == "email":
            raise AdminError(
                "email", N_("%(email)s is not an email address."), email=email
            ) from exc
        raise AdminError(exc.field, N_("This value is not allowed.")) from exc


def update_account(
    session: Session,
    *,
    now: datetime,
    by: StaffUser | None,
    user: StaffUser,
    display_name: str,
    role: str,
    site_ids: Sequence[int],
    all_sites: bool,
    language: str,
) -> bool:
    """Change an account's name, language, role and sites; returns whether anything changed."""
    sites = _sites(session, site_ids)
    _check_role_and_sites(role, sites, all_sites)
    if language not in ("sv", "fi", "en"):
        raise AdminError("language", N_("Choose Swedish, Finnish or English."))
    all_sites = all_sites and role != Role.NURSE.value
    before = account_values(user)
    rights_change = (
        role != user.role or {s.id for s in sites} != user.site_ids or all_sites != user.all_sites
    )
    if rights_change and by is not None and user.id == by.id:
        raise AdminError(
            "role",
            N_("You cannot change your own role or sites. Ask another administrator."),
        )
    if (
        user.role == Role.ADMIN.value
        and role != Role.ADMIN.value
        and user.is_active
        and _other_active_admins(session, user) == 0
    ):
        raise AdminError(
            "role",
            N_("%(email)s is the last active administrator and must stay one."),
            email=user.email,
        )
    user.display_name = display_name.strip()[:200]
    user.language = language
    user.role = role
    user.all_sites = all_sites
    current = {m.site_id: m for m in user.memberships}
    user.memberships = [current.get(s.id) or SiteMembership(site=s) for s in sites]
    session.flush()
    after = account_values(user)
    if after == before:
        return False
    changed = [k for k in after if after[k] != before[k]]
    record(
        session,
        now=now,
        actor=_actor(by),
        action="user.updated",
        object_type="staff_user",
        object_id=user.id,
        before={k: before[k] for k in changed},
        after={k: after[k] for k in changed},
    )
    return True


def set_active(
    session: Session, *, now: datetime, by: StaffUser | None, user: StaffUser, active: bool
) -> int:
    """Deactivate (ending every session of the account at once) or reactivate an account.
    Returns how many sessions ended."""
    if user.is_active == active:
        return 0
    if by is not None and user.id == by.id:
        raise AdminError("active", N_("You cannot deactivate your own account."))
    if not active and user.role == Role.ADMIN.value and _other_active_admins(session, user) == 0:
        raise AdminError(
            "active",
            N_("%(email)s is the last active administrator and cannot be deactivated."),
            email=user.email,
        )
    user.is_active = active
    ended = 0 if active else end_other_sessions(session, now=now, user=user, keep=None)
    record(
        session,
        now=now,
        actor=_actor(by),
        action="user.reactivated" if active else "user.deactivated",
        object_type="staff_user",
        object_id=user.id,
        before={"is_active": not active},
        after={"is_active": active, "sessions_ended": ended},
    )
    return ended


def reset_two_factor(
    session: Session, *, now: datetime, by: StaffUser | None, user: StaffUser
) -> int:
    """Turn an account's two-factor sign-in off after a lost phone; ends its sessions."""
    if by is not None and user.id == by.id:
        raise AdminError(
            "two_factor",
            N_("You cannot reset your own two-factor sign-in. Ask another administrator."),
        )
    try:
        return two_factor.reset(session, now=now, actor=_actor(by), user=user)
    except two_factor.TwoFactorError as exc:
        raise AdminError(
            "two_factor", N_("%(email)s has no two-factor sign-in."), email=user.email
        ) from exc
