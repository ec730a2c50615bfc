"""The ``pro-service`` command: every operator task, as a Flask CLI group.

Start-up is kept short (``pro-service --help`` and ``pro-service score`` are commands a user
waits for): a command's module is imported only when that command runs (:data:`COMMANDS` holds
the one-line help that ``--help`` lists), and each command gets the smallest app it needs
(:func:`app_kind`): the web pages only for serving, no database for ``score``. The group itself
(:mod:`.group`) imports Flask, so the console script (:func:`main`) runs ``score`` without it.
:func:`register_commands` also puts every command on a web app's ``app.cli`` (so
``app.test_cli_runner()`` sees the same commands).
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, NoReturn

import click

from ..settings import ConfigurationError

if TYPE_CHECKING:
    from flask import Flask


class LazyCommand(NamedTuple):
    module: str  # in this package
    attribute: str
    summary: str  # the command's short help, as ``--help`` lists it


#: Every command, imported only when it runs (tests check the summaries against the commands).
COMMANDS: dict[str, LazyCommand] = {
    "db": LazyCommand("db", "db_group", "Database migrations."),
    "demo": LazyCommand(
        "demo",
        "demo_command",
        "Seed a demo study (idempotent) and print sign-in details and open patient links.",
    ),
    "dev": LazyCommand(
        "demo",
        "dev_command",
        "Run the web server and the scheduler process together (development).",
    ),
    "create-site": LazyCommand("operators", "create_site_command", "Create a study site."),
    "create-user": LazyCommand("operators", "create_user_command", "Create a staff account."),
    "generate-key": LazyCommand(
        "operators", "generate_key_command", "Print a new encryption key for PRO_ENCRYPTION_KEY."
    ),
    "password-link": LazyCommand(
        "operators",
        "password_link_command",
        "Print a one-time link (72 hours) for a staff user to set their password.",
    ),
    "deactivate-user": LazyCommand(
        "operators",
        "deactivate_user_command",
        "Deactivate a staff account (or --reactivate it); ends its sessions at once.",
    ),
    "reset-two-factor": LazyCommand(
        "operators",
        "reset_two_factor_command",
        "Turn a user's two-factor sign-in off (lost phone) and end their sessions.",
    ),
    "scheduler": LazyCommand(
        "scheduler",
        "scheduler_command",
        "Run the scheduler process (APScheduler): the periodic jobs, until stopped.",
    ),
    "jobs": LazyCommand("scheduler", "jobs_group", "Run the scheduler's jobs by hand."),
    "score": LazyCommand(
        "score", "score_command", "Score QLQ-C30 / QLQ-PAN26 answers in INPUT.csv."
    ),
    "export": LazyCommand(
        "export",
        "export_command",
        "Export scored, pseudonymised data: every expected time point with its status.",
    ),
    "compliance": LazyCommand(
        "export",
        "compliance_command",
        "Write the compliance report (per site and time point, and in total) as CSV.",
    ),
    "rescore": LazyCommand(
        "export",
        "rescore_command",
        "Recompute stored scores from the stored answers with the current scoring algorithm.",
    ),
    "check": LazyCommand(
        "check", "check_command", "Say whether this installation is ready: OK or FAIL per check."
    ),
    "purge-contact-details": LazyCommand(
        "retention",
        "purge_contact_details_command",
        "Erase the phone numbers of patients whose follow-up ended (GDPR data minimisation).",
    ),
    "import-patients": LazyCommand(
        "import_patients",
        "import_patients_command",
        "Register the patients in FILE.csv, all or none.",
    ),
}

#: Commands that serve or show the web pages (Flask's ``run``, ``routes`` and ``shell`` too).
WEB_COMMANDS = frozenset({"dev", "run", "routes", "shell"})
#: Commands that only read and write files: no database.
FILE_COMMANDS = frozenset({"score"})

AppKind = Literal["web", "base", "files"]


def load_command(name: str) -> click.Command:
    entry = COMMANDS[name]
    module = importlib.import_module(f"{__name__}.{entry.module}")
    command: click.Command = getattr(module, entry.attribute)
    return command


def app_kind(command_name: str | None) -> AppKind:
    """Which app a top-level command needs: the web app, the base app, or files only."""
    if command_name in FILE_COMMANDS:
        return "files"
    if command_name is None or command_name in WEB_COMMANDS:
        return "web"
    return "base"


def cannot_start(problem: Exception) -> NoReturn:
    """Say why a command cannot start, a setting or a data file (named with the field and the
    problem), on stderr, and exit with status 2."""
    if isinstance(problem, ConfigurationError):
        click.echo(f"Configuration error: {problem}", err=True)
    else:
        click.echo(f"Cannot start: {problem}", err=True)
    sys.exit(2)


def register_commands(app: Flask) -> None:
    for name in COMMANDS:
        app.cli.add_command(load_command(name))


def main() -> None:
    """The console script. ``pro-service score`` runs its command straight away, without Flask:
    it only reads and writes files, and a user waits for it."""
    args = sys.argv[1:]
    if args[:1] == ["score"]:
        load_command("score").main(args[1:], prog_name="pro-service score")  # exits
    from .group import cli

    cli.main(prog_name="pro-service")


def __getattr__(name: str) -> Any:
    """``cli``, the Flask command group, is built on first use (it imports Flask)."""
    if name == "cli":
        from .group import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
