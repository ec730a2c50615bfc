"""The ``pro-service`` Flask command group: it lists every command without importing it, and
builds for each command the smallest app it needs (:func:`~pro_service.cli.app_kind`)."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import FlaskGroup

from ..settings import ConfigurationError
from . import COMMANDS, app_kind, cannot_start, load_command


def _running_command() -> str | None:
    """The top-level command being run (``jobs`` for ``pro-service jobs run all``)."""
    ctx = click.get_current_context(silent=True)
    name = None
    while ctx is not None and ctx.parent is not None:
        name = ctx.info_name
        ctx = ctx.parent
    return name


def _create_app() -> Flask:
    from .. import create_app, create_base_app
    from ..instruments import InstrumentFileError
    from ..messaging.texts import MessageFileError
    from ..scheduling.schedule import ScheduleFileError

    kind = app_kind(_running_command())
    try:
        if kind == "web":
            return create_app()
        return create_base_app(database=kind == "base")
    except (
        ConfigurationError,
        InstrumentFileError,
        ScheduleFileError,
        MessageFileError,
    ) as exc:  # names the setting, or the file, field and problem
        cannot_start(exc)


class ProServiceGroup(FlaskGroup):
    """Flask's group, but it neither builds the app to list its commands (they are all known
    here) nor imports a command's module before the command runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands()
        return sorted({*click.Group.list_commands(self, ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        self._load_plugin_commands()
        command = click.Group.get_command(self, ctx, name)
        if command is None and name in COMMANDS:
            command = load_command(name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(map(len, names))
        rows = []
        for name in names:
            command = click.Group.get_command(self, ctx, name)
            if command is None:  # not imported yet: its summary, shortened the same way
                command = click.Command(name, help=COMMANDS[name].summary)
            if not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=ProServiceGroup,
    create_app=_create_app,
    add_version_option=False,
    load_dotenv=False,
    set_debug_flag=False,
)
def cli() -> None:
    """PRO Service: patient-reported outcomes by SMS link."""
