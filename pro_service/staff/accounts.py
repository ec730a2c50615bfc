"""Sites and staff accounts."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..audit import Actor, record
from ..models import Role, Site, SiteMembership, StaffUser
from .passwords import PasswordRejected, check_new_password

password_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
#: The password hash of an account whose password is not set yet (matches no password: it is
#: not an argon2 hash); its owner sets one through a set-password link.
NO_PASSWORD = "!unset"  # noqa: S105  (a marker that is no hash, not a password)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class StaffDataError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class SiteFieldsError(StaffDataError):
    """Every bad field of a site: ``problems`` is a list of (field, message)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__(*problems[0])


@dataclass(frozen=True)
class SiteFields:
    """A site's editable settings, checked and normalised (see :func:`check_site_fields`)."""

    name: str
    country: str
    time_zone: str
    default_language: str
    study_id_pattern: str | None
    sending_start: str
    sending_end: str
    sms_sender: str | None


#: An SMS sender: an alphanumeric sender ID (3-11 letters, digits or spaces, not only digits)
#: or an E.164 number.
_ALPHANUMERIC_SENDER = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{3,11}")
_E164 = re.compile(r"\+[1-9]\d{6,14}")


def check_site_fields(
    *,
    name: str,
    country: str,
    time_zone: str,
    default_language: str,
    study_id_pattern: str | None = None,
    sending_start: str = "09:00",
    sending_end: str = "20:00",
    sms_sender: str | None = None,
) -> SiteFields:
    """The fields checked and normalised. :class:`SiteFieldsError` lists every bad field (a form
    shows them all at once); its message names the first."""
    problems: list[tuple[str, str]] = []
    name = name.strip()
    if not name or len(name) > 200:
        problems.append(("name", "a site needs a name of at most 200 characters"))
    if not re.fullmatch(r"[A-Za-z]{2}", country):
        problems.append(("country", f"{country!r} is not a two-letter country code"))
    try:
        if not time_zone or time_zone != time_zone.strip():
            raise ValueError(time_zone)
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(("time_zone", f"{time_zone!r} is not a known time zone"))
    if default_language not in ("sv", "fi", "en"):
        problems.append(("default_language", "must be sv, fi or en"))
    times_ok = True
    for field, value in (("sending_start", sending_start), ("sending_end", sending_end)):
        if not _TIME.fullmatch(value):
            problems.append((field, f"{value!r} is not a time like 09:00"))
            times_ok = False
    if times_ok and sending_start >= sending_end:
        problems.append(("sending_end", "sending hours must end after they start"))
    study_id_pattern = (study_id_pattern or "").strip() or None
    if study_id_pattern:
        try:
            re.compile(study_id_pattern)
        except re.error as exc:
            problems.append(("study_id_pattern", f"not a valid pattern: {exc}"))
    sms_sender = (sms_sender or "").strip() or None
    if sms_sender and not (
        _ALPHANUMERIC_SENDER.fullmatch(sms_sender) or _E164.fullmatch(sms_sender)
    ):
        problems.append(
            (
                "sms_sender",
                f"{sms_sender!r} is neither a sender name of 3-11 letters and digits nor a "
                "phone number like +46701234567",
            )
        )
    if problems:
        raise SiteFieldsError(problems)
    return SiteFields(
        name=name,
        country=country.upper(),
        time_zone=time_zone,
        default_language=default_language,
        study_id_pattern=study_id_pattern,
        sending_start=sending_start,
        sending_end=sending_end,
        sms_sender=sms_sender,
    )


def site_values(site: Site) -> dict[str, str | None]:
    """The editable settings of ``site``, as the audit trail records them."""
    return {
        "code": site.code,
        **{f.name: getattr(site, f.name) for f in fields(SiteFields)},
    }


def check_site_code(session: Session, code: str, *, site: Site | None = None) -> str:
    """``code`` normalised; refused when badly formed or taken by another site than ``site``."""
    code = code.strip().upper()
    if not re.fullmatch(r"[A-Z0-9][A-Z0-9-]{1,31}", code):
        raise StaffDataError(
            "code",
            f"{code!r} must be 2-32 letters, digits or dashes, starting with one of the first two",
        )
    holder = session.scalar(select(Site.id).where(Site.code == code))
    if holder is not None and (site is None or holder != site.id):
        raise StaffDataError("code", f"a site with code {code!r} already exists")
    return code


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
    sms_sender: str | None = None,
) -> Site:
    code = check_site_code(session, code)
    checked = check_site_fields(
        name=name,
        country=country,
        time_zone=time_zone,
        default_language=default_language,
        study_id_pattern=study_id_pattern,
        sending_start=sending_start,
        sending_end=sending_end,
        sms_sender=sms_sender,
    )
    site = Site(code=code, created_at=now, **asdict(checked))
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
        after=site_values(site),
    )
    return site


def update_site(
    session: Session,
    *,
    now: datetime,
    actor: Actor,
    site: Site,
    changes: SiteFields,
    code: str | None = None,
) -> bool:
    """Apply ``changes`` (checked by :func:`check_site_fields`) and a new ``code`` (checked by
    :func:`check_site_code`); audited with before/after. Returns whether anything changed.
    Exports name the site by its code at the time of the export."""
    before = site_values(site)
    if code is not None:
        site.code = code
    for name, value in asdict(changes).items():
        setattr(site, name, value)
    after = site_values(site)
    if after == before:
        return False
    changed = [k for k in after if after[k] != before[k]]
    record(
        session,
        now=now,
        actor=actor,
        action="site.updated",
        object_type="site",
        object_id=site.id,
        site_id=site.id,
        before={k: before[k] for k in changed},
        after={k: after[k] for k in changed},
    )
    return True


def create_user(
    session: Session,
    *,
    now: datetime,
    actor: Actor,
    email: str,
    password: str | None,
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
    if language not in ("sv", "fi", "en"):
        raise StaffDataError("language", "must be sv, fi or en")
    if password is not None:
        try:
            check_new_password(password, context=(email, display_name))
        except PasswordRejected as exc:
            raise StaffDataError("password", str(exc)) from exc
    if role == Role.NURSE.value and (all_sites or not sites):
        raise StaffDataError("sites", "a nurse belongs to one or more named sites")
    user = StaffUser(
        email=email,
        password_hash=NO_PASSWORD if password is None else password_hasher.hash(password),
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
            "display_name": display_name,
            "language": language,
            "password_set": password is not None,
        },
    )
    return user
