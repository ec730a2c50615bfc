"""``pro-service export`` and ``pro-service rescore``."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext

from ..audit import Actor
from ..clock import utcnow
from ..exports import (
    FORMATS,
    ExportFilterError,
    ExportFilters,
    ExportPathError,
    write_export,
)
from ..extensions import db

_FILTER_OPTIONS = {
    "site": "--site",
    "timepoint": "--timepoint",
    "instrument": "--instrument",
    "from": "--from",
    "to": "--to",
}


@click.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    required=True,
    help="long or wide CSV, sav (SPSS), dta (Stata), fhir (FHIR R4 NDJSON)",
)
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="File to write; the data dictionary goes to OUTPUT.dictionary.csv",
)
@click.option("--site", "sites", multiple=True, help="Site code; repeat for several")
@click.option(
    "--timepoint", "timepoints", multiple=True, help="Time point key, e.g. m3; repeatable"
)
@click.option("--instrument", "instruments", multiple=True, help="Instrument id, e.g. qlq-c30")
@click.option(
    "--from", "date_from", type=click.DateTime(["%Y-%m-%d"]), help="Completed on or after (date)"
)
@click.option("--to", "date_to", type=click.DateTime(["%Y-%m-%d"]), help="Completed on or before")
@click.option(
    "--completed-only",
    is_flag=True,
    help="Only completed time points (default: every expected one, with its status)",
)
@with_appcontext
def export_command(
    fmt: str,
    output: Path,
    sites: tuple[str, ...],
    timepoints: tuple[str, ...],
    instruments: tuple[str, ...],
    date_from: Any,
    date_to: Any,
    completed_only: bool,
) -> None:
    """Export scored, pseudonymised data: every expected time point with its status.

    Each time point says its status (complete, partial, missed with its reason, open, not yet
    due, not expected) and how it was answered; --completed-only keeps the completed ones.

    Writes OUTPUT and its data dictionary OUTPUT.dictionary.csv, both or neither.
    """
    filters = ExportFilters(
        sites=sites,
        timepoints=timepoints,
        instruments=instruments,
        date_from=_as_date(date_from),
        date_to=_as_date(date_to),
        completed_only=completed_only,
    )
    session = db.session
    now = utcnow()
    progress: dict[str, Any] = {}

    def on_total(total: int) -> None:
        bar = click.progressbar(length=total, label="Exporting", file=sys.stderr)
        progress["bar"] = bar.__enter__()
        progress["close"] = bar

    def on_examined(n: int) -> None:
        if "bar" in progress:
            progress["bar"].update(n)

    try:
        result = write_export(
            session,
            fmt=fmt,
            path=output,
            filters=filters,
            registry=current_app.extensions["instruments"],
            schedule=current_app.extensions["schedule"],
            base_url=current_app.config["PRO_SETTINGS"].public_base_url,
            now=now,
            on_total=on_total if sys.stderr.isatty() else None,
            on_examined=on_examined,
        )
    except ExportFilterError as exc:
        raise click.BadParameter(exc.message, param_hint=_FILTER_OPTIONS[exc.option]) from exc
    except ExportPathError as exc:
        raise click.BadParameter(str(exc), param_hint="-o/--output") from exc
    finally:
        if "close" in progress:
            progress["close"].__exit__(None, None, None)

    from ..audit import record

    record(
        session,
        now=now,
        actor=Actor.operator(),
        action="export.written",
        object_type="export",
        after={"format": fmt, "filters": filters.describe(), "assessments": result.assessments},
    )
    session.commit()
    if result.empty:
        what = "Questionnaires only" if fmt == "fhir" else "the header only"
        click.echo(f"No time points match the filters: {output} holds {what}.", err=True)
    unit = "QuestionnaireResponses" if fmt == "fhir" else "rows"
    click.echo(
        f"Wrote {result.rows} {unit} ({result.assessments} assessments) to {result.path}; "
        f"data dictionary: {result.dictionary_path}"
    )


def _as_date(value: Any) -> date | None:
    return None if value is None else value.date()


@click.command("rescore")
@click.option("--dry-run", is_flag=True, help="Report what would change; change nothing")
@with_appcontext
def rescore_command(dry_run: bool) -> None:
    """Recompute stored scores from the stored answers with the current scoring algorithm."""
    from ..answering.rescoring import rescore

    session = db.session
    report = rescore(
        session,
        now=utcnow(),
        actor=Actor.operator(),
        registry=current_app.extensions["instruments"],
        dry_run=dry_run,
    )
    if dry_run:
        session.rollback()
    else:
        session.commit()
    click.echo(report.summary())


@click.command("compliance")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The CSV file to write (replaced only when complete).",
)
@click.option("--site", "sites", multiple=True, help="Site code; repeat for several (default: all)")
@with_appcontext
def compliance_command(output: Path, sites: tuple[str, ...]) -> None:
    """Write the compliance report (per site and time point, and in total) as CSV.

    The same table as /staff/compliance: patients, not yet due, open, complete, partly
    answered, missed by reason, not expected, completion rate and available data rate.
    """
    import os
    import tempfile

    from sqlalchemy import select

    from ..compliance import compliance_report, write_csv
    from ..models import Site

    session = db.session
    site_ids = None
    if sites:
        wanted = [s.upper() for s in sites]
        found = dict(session.execute(select(Site.code, Site.id).where(Site.code.in_(wanted))).all())
        unknown = sorted({s.upper() for s in sites} - set(found))
        if unknown:
            raise click.ClickException(f"--site: no site with code {', '.join(unknown)}")
        site_ids = frozenset(found.values())
    folder = output.resolve().parent
    if not folder.is_dir():
        raise click.ClickException(f"{output}: the folder {folder} does not exist")
    report = compliance_report(
        session,
        schedule=current_app.extensions["schedule"],
        reasons=current_app.extensions["missing_reasons"].codes,
        site_ids=site_ids,
    )
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".compliance-", suffix=".csv")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            rows = write_csv(report, out)
        os.replace(temporary, output)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    session.rollback()
    click.echo(f"Wrote {rows} rows ({len(report.sites)} site(s), total included) to {output}.")
