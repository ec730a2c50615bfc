"""``pro-service import-patients FILE.csv [--site CODE]``: register many patients at once.

All or nothing: every row is checked with the same rules as the staff registration form (the
same service, ``check_date_limits=True``), plus duplicate study IDs inside the file. If any row is
bad, every problem is listed (line, column, problem), nothing is saved and the exit status is 1.
A file that cannot be used at all (missing, not UTF-8, unknown or missing columns, unknown
``--site``) stops with exit status 2. Otherwise all patients are committed in one transaction.
Problems never quote a phone number.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import NoReturn

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..audit import Actor, record
from ..clock import utcnow
from ..extensions import db
from ..instruments.csv_dialect import sniff_csv
from ..models import Site
from ..patients.registry import (
    PatientDataError,
    check_language,
    check_phone,
    register_patient,
)
from ..scheduling.assessments import registration_outlook

REQUIRED = ("study_id", "phone", "inclusion_date")
OPTIONAL = ("site", "language", "surgery_date")


@dataclass(frozen=True)
class Problem:
    line: int
    column: str
    problem: str

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.problem}"


def _stop(message: str) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(2)


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    if not path.is_file():
        _stop(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        _stop(f"{path}: not UTF-8 text (save it as CSV UTF-8)")
    except OSError as exc:
        _stop(f"{path}: cannot be read ({exc.strerror or exc})")
    lines = text.splitlines()
    if not lines:
        _stop(f"{path}: the file is empty")
    # Spreadsheets with a Swedish or Finnish locale save CSV with semicolons.
    delimiter = sniff_csv(path).delimiter
    reader = csv.reader(text.splitlines(keepends=True), delimiter=delimiter)
    header = [name.strip().lower() for name in next(reader)]
    rows = []
    for cells in reader:
        if any(cell.strip() for cell in cells):
            rows.append((reader.line_num, cells))
    return header, rows


def _check_header(path: Path, header: list[str], site_given: bool) -> None:
    known = set(REQUIRED) | set(OPTIONAL)
    unknown = [name for name in header if name not in known]
    if unknown:
        _stop(
            f"{path}: unknown column(s) {', '.join(repr(n) for n in unknown)}; "
            f"the columns are {', '.join(REQUIRED + OPTIONAL)}"
        )
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        _stop(f"{path}: column(s) {', '.join(repeated)} appear more than once")
    needed = [*REQUIRED, *(() if site_given else ("site",))]
    missing = [name for name in needed if name not in header]
    if missing:
        _stop(f"{path}: missing column(s) {', '.join(missing)}")


def _parse_date(value: str) -> date:
    if len(value) != 10:
        raise ValueError(value)
    return date.fromisoformat(value)


@click.command("import-patients")
@click.argument("csv_path", metavar="FILE.csv", type=click.Path(path_type=Path))
@click.option(
    "--site",
    "site_code",
    default=None,
    help="Site code for rows without a site (a row naming another site is an error).",
)
@with_appcontext
def import_patients_command(csv_path: Path, site_code: str | None) -> None:
    """Register the patients in FILE.csv, all or none.

    Columns: study_id, site (code), phone, language (sv, fi or en; empty: the site's default),
    inclusion_date, surgery_date (optional); dates as YYYY-MM-DD; comma or semicolon separated.
    """
    session = db.session
    sites = {site.code.upper(): site for site in session.scalars(select(Site))}
    default_site = None
    if site_code is not None:
        default_site = sites.get(site_code.strip().upper())
        if default_site is None:
            _stop(f"--site: no site with code {site_code!r}")
    header, rows = _read_rows(csv_path)
    _check_header(csv_path, header, default_site is not None)
    if not rows:
        _stop(f"{csv_path}: no patients in the file")

    now = utcnow()
    actor = Actor.operator()
    problems: list[Problem] = []
    notes: list[str] = []
    seen: dict[str, int] = {}
    registered = 0
    for line, cells in rows:
        if len(cells) > len(header):
            problems.append(Problem(line, "-", f"{len(cells)} cells but {len(header)} columns"))
            continue
        row = {name: (cells[i].strip() if i < len(cells) else "") for i, name in enumerate(header)}
        found: list[Problem] = []

        site = default_site
        code = row.get("site", "")
        if code:
            site = sites.get(code.upper())
            if site is None:
                found.append(Problem(line, "site", f"no site with code {code!r}"))
            elif default_site is not None and site is not default_site:
                found.append(Problem(line, "site", f"{code} is not the --site {default_site.code}"))
        elif site is None:
            found.append(Problem(line, "site", "a site code is required"))

        study_id = row["study_id"]
        if study_id in seen:
            found.append(Problem(line, "study_id", f"{study_id} is also on line {seen[study_id]}"))
        elif study_id:
            seen[study_id] = line

        dates: dict[str, date | None] = {}
        for column in ("inclusion_date", "surgery_date"):
            value = row.get(column, "")
            dates[column] = None
            if not value:
                if column == "inclusion_date":
                    found.append(Problem(line, column, "a date is required"))
                continue
            try:
                dates[column] = _parse_date(value)
            except ValueError:
                found.append(Problem(line, column, f"{value!r} is not a date (YYYY-MM-DD)"))

        language = row.get("language", "")
        if language:
            try:
                check_language(language)
            except PatientDataError as exc:
                found.append(Problem(line, "language", exc.english))
        if site is not None:
            try:  # the site's country is the default region
                check_phone(row["phone"], site)
            except PatientDataError as exc:
                found.append(Problem(line, "phone", exc.english))

        if found or site is None:
            problems.extend(found)
            continue
        inclusion = dates["inclusion_date"]
        assert inclusion is not None
        try:
            patient = register_patient(
                session,
                now=now,
                actor=actor,
                vault=current_app.extensions["vault"],
                schedule=current_app.extensions["schedule"],
                site=site,
                study_id=study_id,
                phone=row["phone"],
                language=language or site.default_language,
                inclusion_date=inclusion,
                surgery_date=dates["surgery_date"],
                check_date_limits=True,
            )
        except PatientDataError as exc:  # checked before anything is added: the row left nothing
            problems.append(Problem(line, exc.field, exc.english))
            continue
        registered += 1
        outlook = registration_outlook(patient, current_app.extensions["schedule"], now)
        if outlook.opened_late or outlook.lost:
            notes.append(
                f"line {line}: {patient.study_id}: "
                + "; ".join(
                    [
                        *(
                            f"{a.timepoint} opens late, today, until {a.window_closes}"
                            for a in outlook.opened_late
                        ),
                        *(
                            f"{a.timepoint} already past (closed {a.window_closes}), not sent"
                            for a in outlook.lost
                        ),
                    ]
                )
            )

    if problems:
        session.rollback()
        bad_rows = len({p.line for p in problems})
        click.echo(
            f"{csv_path}: {len(problems)} problem{'s' if len(problems) != 1 else ''} in "
            f"{bad_rows} of {len(rows)} row{'s' if len(rows) != 1 else ''}; "
            "nothing was saved",
            err=True,
        )
        for problem in problems:
            click.echo(str(problem), err=True)
        sys.exit(1)
    record(
        session,
        now=now,
        actor=actor,
        action="patients.imported",
        after={"count": registered, "file": csv_path.name},
    )
    try:
        session.commit()
    except IntegrityError:  # someone registered one of these study IDs meanwhile
        session.rollback()
        click.echo(
            f"{csv_path}: a study ID was registered by someone else meanwhile; "
            "nothing was saved. Run the import again to see which.",
            err=True,
        )
        sys.exit(1)
    click.echo(f"Registered {registered} patient{'s' if registered != 1 else ''} from {csv_path}.")
    for note in notes:  # registered after a window: what each patient gets and has lost
        click.echo(note)
