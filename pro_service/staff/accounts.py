"""Sites and staff accounts."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..audit import Actor, record
from ..models import Role, Site, SiteMembership, StaffUser

password_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters

MIN_PASSWORD_LENGTH = 12
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class StaffDataError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


def create_site(
    session: Session,
    *,
    now: datetime,
    actor: Actor,
    code: str,
    name: str,
    country: str,
    time_zone: str,
    default_language: str,
    study_id_pattern: str | None = None,
    sending_start: str = "09:00",
    sending_end: str = "20:00",
) -> Site:
    code = code.strip().upper()
    if not re.fullmatch(r"[A-Z0-9][A-Z0-9-]{1,31}", code):
        raise StaffDataError(
            "code",
            f"{code!r} must be 2-32 letters, digits or dashes, starting with one of the first two",
        )
    if session.scalar(select(Site.id).where(Site.code == code)) is not None:
        raise StaffDataError("code", f"a site with code {code!r} already exists")
    if not re.fullmatch(r"[A-Za-z]{2}", country):
        raise StaffDataError("country", f"{country!r} is not a two-letter country code")
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise StaffDataError("time_zone", f"{time_zone!r} is not a known time zone") from exc
    if default_language not in ("sv", "fi", "en"):
        raise StaffDataError("default_language", "must be sv, fi or en")
    for field, value in (("sending_start", sending_start), ("sending_end", sending_end)):
        if not _TIME.fullmatch(value):
            raise StaffDataError(field, f"{value!r} is not a time like 09:00")
    if sending_start >= sending_end:
        raise StaffDataError("sending_end", "sending hours must end after they start")
    if study_id_pattern:
        try:
            re.compile(study_id_pattern)
        except re.error as exc:
            raise StaffDataError("study_id_pattern", f"not a valid pattern: {exc}") from exc
    site = Site(
        code=code,
        name=name.strip(),
        country=country.upper(),
        time_zone=time_zone,
        default_language=default_language,
        study_id_pattern=study_id_pattern,
        sending_start=sending_start,
        sending_end=sending_end,
        created_at=now,
    )
    session.add(site)
    session.flush()
    record(
        session,
        now=now,
        actor=actor,
        action="site.created",
        object_type="site",
        object_id=site.id,
        site_id=site.id,
        after={"code": code, "name": site.name, "time_zone": time_zone},
    )
    return site


def create_user(
    session: Session,
    *,
    now: datetime,
    actor: Actor,
    email: str,
    password: str,
    role: str,
    sites: list[Site],
    all_sites: bool = False,
    display_name: str = "",
    language: str = "sv",
) -> StaffUser:
    email = email.strip().lower()
    if not _EMAIL.fullmatch(email):
        raise StaffDataError("email", f"{email!r} is not an email address")
    if session.scalar(select(StaffUser.id).where(StaffUser.email == email)) is not None:
        raise StaffDataError("email", f"a user with email {email!r} already exists")
    if role not in {r.value for r in Role}:
        raise StaffDataError("role", f"role must be one of {', '.join(r.value for r in Role)}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StaffDataError(
            "password", f"passwords need at least {MIN_PASSWORD_LENGTH} characters"
        )
    if role == Role.NURSE.value and (all_sites or not sites):
        raise StaffDataError("sites", "a nurse belongs to one or more named sites")
    user = StaffUser(
        email=email,
        password_hash=password_hasher.hash(password),
        role=role,
        display_name=display_name,
        language=language,
        all_sites=all_sites,
        is_active=True,
        created_at=now,
    )
    user.memberships = [SiteMembership(site=site) for site in sites]
    session.add(user)
    session.flush()
    record(
        session,
        now=now,
        actor=actor,
        action="user.created",
        object_type="staff_user",
        object_id=user.id,
        after={
            "email": email,
            "role": role,
            "sites": [s.code for s in sites],
            "all_sites": all_sites,
        },
    )
    return user
