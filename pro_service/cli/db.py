from __future__ import annotations

import click
from flask.cli import with_appcontext

from .. import migrate
from ..extensions import db


@click.group("db")
def db_group() -> None:
    """Database migrations."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@with_appcontext
def upgrade_command(revision: str) -> None:
    """Upgrade the database schema (creates an empty database's tables)."""
    migrate.upgrade(db.engine, revision)
    click.echo(f"Database at revision {migrate.current_revision(db.engine)}.")


@db_group.command("current")
@with_appcontext
def current_command() -> None:
    """Show the database's schema revision and the newest one."""
    click.echo(f"database: {migrate.current_revision(db.engine) or 'empty'}")
    click.echo(f"newest:   {migrate.head_revision()}")


@db_group.command("revision")
@click.option("-m", "--message", required=True)
@with_appcontext
def revision_command(message: str) -> None:
    """Generate a migration from model changes (developers; database must be at head)."""
    migrate.revision(db.engine, message)
