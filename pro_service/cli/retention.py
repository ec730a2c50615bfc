from __future__ import annotations

from datetime import datetime

import click
from flask.cli import with_appcontext

from ..audit import Actor
from ..clock import utcnow
from ..extensions import db
from ..patients.retention import purge_contact_details, purgeable


@click.command("purge-contact-details")
@click.option(
    "--ended-before",
    required=True,
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Erase the numbers of patients whose last time point closed before this day (YYYY-MM-DD)",
)
@click.option("--dry-run", is_flag=True, help="List who would be purged; change nothing")
@with_appcontext
def purge_contact_details_command(ended_before: datetime, dry_run: bool) -> None:
    """Erase the phone numbers of patients whose follow-up ended (GDPR data minimisation).

    A patient qualifies when no time point is left to open or answer and the last window closed
    before --ended-before. Answers, scores and study IDs stay; each erasure is audited.
    """
    now = utcnow()
    day = ended_before.date()
    if day > now.date():
        raise click.ClickException(
            f"--ended-before {day.isoformat()} is in the future: follow-up that has not ended "
            "yet cannot be purged"
        )
    session = db.session
    if dry_run:
        found = purgeable(session, ended_before=day)
        verb = "would be erased"
    else:
        found = purge_contact_details(
            session, now=now, actor=Actor.operator("purge-contact-details"), ended_before=day
        )
        session.commit()
        verb = "erased"
    for entry in found:
        until = entry.followed_until.isoformat() if entry.followed_until else "no time points"
        click.echo(f"  {entry.study_id:12} followed until {until}")
    click.echo(f"Phone numbers {verb}: {len(found)}" + (" (dry run)" if dry_run else ""))
