from __future__ import annotations

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from ..audit import Actor
from ..clock import utcnow
from ..crypto import generate_key
from ..extensions import db
from ..models import Role, Site, StaffUser
from ..staff.accounts import StaffDataError, create_site, create_user


@click.command("generate-key")
def generate_key_command() -> None:
    """Print a new encryption key for PRO_ENCRYPTION_KEY."""
    click.echo(generate_key())


@click.command("create-site")
@click.option("--code", required=True, help="Short code, e.g. SE-UPP")
@click.option("--name", required=True)
@click.option("--country", required=True, help="Two-letter country code (SE, FI)")
@click.option("--time-zone", required=True, help="e.g. Europe/Stockholm")
@click.option(
    "--language", "default_language", type=click.Choice(["sv", "fi", "en"]), required=True
)
@click.option("--study-id-pattern", default=None, help=r"Regular expression, e.g. 'UPP-\d{3}'")
@click.option("--sending-start", default="09:00", show_default=True)
@click.option("--sending-end", default="20:00", show_default=True)
@with_appcontext
def create_site_command(**fields: str) -> None:
    """Create a study site."""
    session = db.session
    try:
        site = create_site(session, now=utcnow(), actor=Actor.operator(), **fields)
    except StaffDataError as exc:
        raise click.ClickException(str(exc)) from exc
    session.commit()
    click.echo(f"Created site {site.code} ({site.name}).")


@click.command("create-user")
@click.option("--email", required=True)
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--site", "site_codes", multiple=True, help="Site code; repeat for several")
@click.option("--all-sites", is_flag=True, help="Investigators, data managers, admins: every site")
@click.option("--name", "display_name", default="")
@click.option("--language", type=click.Choice(["sv", "fi", "en"]), default="sv", show_default=True)
@click.password_option(
    prompt="Password", help="At least 12 characters; common or easy-to-guess passwords are refused"
)
@with_appcontext
def create_user_command(
    email: str,
    role: str,
    site_codes: tuple[str, ...],
    all_sites: bool,
    display_name: str,
    language: str,
    password: str,
) -> None:
    """Create a staff account."""
    session = db.session
    sites = []
    for code in site_codes:
        site = session.scalar(select(Site).where(Site.code == code.upper()))
        if site is None:
            raise click.ClickException(f"--site: no site with code {code!r}")
        sites.append(site)
    try:
        user = create_user(
            session,
            now=utcnow(),
            actor=Actor.operator(),
            email=email,
            password=password,
            role=role,
            sites=sites,
            all_sites=all_sites,
            display_name=display_name,
            language=language,
        )
    except StaffDataError as exc:
        raise click.ClickException(str(exc)) from exc
    session.commit()
    click.echo(f"Created {user.role} {user.email}.")


@click.command("reset-two-factor")
@click.argument("email")
@with_appcontext
def reset_two_factor_command(email: str) -> None:
    """Turn a user's two-factor sign-in off (lost phone) and end their sessions."""
    from ..models import StaffUser
    from ..staff.two_factor import TwoFactorError, reset

    session = db.session
    user = session.scalar(select(StaffUser).where(StaffUser.email == email.strip().lower()))
    if user is None:
        raise click.ClickException(f"EMAIL: no staff user with email {email!r}")
    try:
        ended = reset(session, now=utcnow(), actor=Actor.operator(), user=user)
    except TwoFactorError as exc:
        raise click.ClickException(str(exc)) from exc
    session.commit()
    click.echo(
        f"Two-factor sign-in is off for {user.email}; {ended} session(s) ended."
        + (" An admin sets it up again at the next sign-in." if user.role == "admin" else "")
    )


def _staff_user(email: str) -> StaffUser:
    user = db.session.scalar(select(StaffUser).where(StaffUser.email == email.strip().lower()))
    if user is None:
        raise click.ClickException(f"EMAIL: no staff user with email {email!r}")
    return user


@click.command("password-link")
@click.argument("email")
@with_appcontext
def password_link_command(email: str) -> None:
    """Print a one-time link (72 hours) for a staff user to set their password.

    For a forgotten password or a new account made here; any earlier unused link of the
    account stops working. Hand the link over by a channel you trust.
    """
    from flask import current_app

    from ..staff.password_links import LINK_VALID, issue_link

    user = _staff_user(email)
    if not user.is_active:
        raise click.ClickException(f"EMAIL: {user.email} is deactivated; reactivate it first")
    token = issue_link(db.session, now=utcnow(), actor=Actor.operator(), user=user)
    db.session.commit()
    base = current_app.config["PRO_SETTINGS"].public_base_url
    hours = int(LINK_VALID.total_seconds() // 3600)
    click.echo(f"Set-password link for {user.email} (works once, for {hours} hours):")
    click.echo(f"{base}/staff/set-password/{token}")


@click.command("deactivate-user")
@click.argument("email")
@click.option("--reactivate", is_flag=True, help="Make a deactivated account active again.")
@with_appcontext
def deactivate_user_command(email: str, reactivate: bool) -> None:
    """Deactivate a staff account (or --reactivate it); ends its sessions at once.

    The last active administrator cannot be deactivated.
    """
    from ..staff.administration import AdminError, set_active

    user = _staff_user(email)
    try:
        ended = set_active(db.session, now=utcnow(), by=None, user=user, active=reactivate)
    except AdminError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    if reactivate:
        click.echo(f"{user.email} is active.")
    else:
        click.echo(f"{user.email} is deactivated; {ended} session(s) ended.")
