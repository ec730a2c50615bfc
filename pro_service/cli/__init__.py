"""The ``pro-service`` command: every operator task, as a Flask CLI group.

Commands are registered on the app (``app.cli``) by :func:`register_commands`, so the console
script and ``app.test_cli_runner()`` see the same commands.
"""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import FlaskGroup

from ..settings import ConfigurationError


def _create_app() -> Flask:
    from .. import create_app
    from ..instruments import InstrumentFileError
    from ..messaging.texts import MessageFileError
    from ..scheduling.schedule import ScheduleFileError

    try:
        return create_app()
    except ConfigurationError as exc:
        click.echo(f"Configuration error: {exc}", err=True)
    except (
        InstrumentFileError,
        ScheduleFileError,
        MessageFileError,
    ) as exc:  # names file, field and problem
        click.echo(f"Cannot start: {exc}", err=True)
    sys.exit(2)


def register_commands(app: Flask) -> None:
    from .db import db_group
    from .demo import demo_command, dev_command
    from .export import export_command, rescore_command
    from .import_patients import import_patients_command
    from .operators import (
        create_site_command,
        create_user_command,
        generate_key_command,
        reset_two_factor_command,
    )
    from .scheduler import jobs_group, scheduler_command
    from .score import score_command

    for command in (
        db_group,
        demo_command,
        dev_command,
        create_site_command,
        create_user_command,
        generate_key_command,
        reset_two_factor_command,
        scheduler_command,
        jobs_group,
        score_command,
        export_command,
        rescore_command,
        import_patients_command,
    ):
        app.cli.add_command(command)


@click.group(
    cls=FlaskGroup,
    create_app=_create_app,
    add_version_option=False,
    load_dotenv=False,
    set_debug_flag=False,
)
def cli() -> None:
    """PRO Service: patient-reported outcomes by SMS link."""


def main() -> None:
    cli.main(prog_name="pro-service")
