"""The long table on PostgreSQL: one ``COPY (SELECT ...) TO STDOUT WITH CSV``.

The long table has a row per stored score, hundreds of thousands for a study; building each in
Python costs several times what PostgreSQL needs to write them. On PostgreSQL the whole table
is therefore one query that PostgreSQL itself writes as CSV. It gives exactly the bytes of the
Python path (:func:`.tables.long_csv_rows`, used on SQLite), which the tests check on the same
data with every filter:

* the same assessments: completed, in the selected sites and time points, completed on a local
  calendar day at the site within the date range;
* the same order: study ID, due date, assessment, then :attr:`Selection.scale_order`;
* the same text: times as ``YYYY-MM-DDTHH:MM:SSZ`` (UTC, whole seconds), scores as the
  shortest text that reads back as the same double (PostgreSQL's ``extra_float_digits = 1``;
  the Python path writes e.g. ``50`` rather than ``50.0`` to match), missing as empty;
* the language of each instrument's answers: the first in language order, else the
  assessment's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any

from sqlalchemy import (
    Date,
    Integer,
    String,
    and_,
    cast,
    column,
    func,
    literal,
    select,
    type_coerce,
    values,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from ..models import Assessment, AssessmentStatus, Patient, Response, Score, Site
from .source import Selection

ISO_UTC = 'YYYY-MM-DD"T"HH24:MI:SS"Z"'


def long_copy_query(selection: Selection) -> Any:
    """The SELECT of the long table's 13 columns, filtered and ordered as the export is."""
    local_day = cast(func.timezone(Site.time_zone, Assessment.completed_at), Date)
    order = selection.scale_order
    # The scale order as a little table joined by hash: a CASE with a branch per scale, as a
    # sort key, cost a quarter of the query.
    positions = values(
        column("instrument_id", String),
        column("scale", String),
        column("position", Integer),
        name="scale_order",
    ).data([(instrument_id, scale, n) for (instrument_id, scale), n in order.items()])
    position = func.coalesce(positions.c.position, len(order))
    languages = (
        select(
            Response.assessment_id,
            Response.instrument_id,
            func.min(Response.language).label("language"),
        )
        .where(Response.instrument_id.in_(selection.instrument_ids))
        .group_by(Response.assessment_id, Response.instrument_id)
        .subquery()
    )
    query = (
        select(
            Patient.study_id,
            Site.code,
            Assessment.timepoint,
            type_coerce(local_day - Patient.surgery_date, Integer),
            func.to_char(func.timezone("UTC", Assessment.completed_at), ISO_UTC),
            Score.instrument_id,
            Score.instrument_version,
            func.coalesce(languages.c.language, Assessment.language),
            Score.scale,
            Score.value,
            Score.items_in_scale,
            Score.items_answered,
            Score.algorithm_version,
        )
        .select_from(Score)
        .join(Assessment, Score.assessment_id == Assessment.id)
        .join(Patient, Assessment.patient_id == Patient.id)
        .join(Site, Patient.site_id == Site.id)
        .outerjoin(
            positions,
            and_(
                positions.c.instrument_id == Score.instrument_id,
                positions.c.scale == Score.scale,
            ),
        )
        .outerjoin(
            languages,
            and_(
                languages.c.assessment_id == Score.assessment_id,
                languages.c.instrument_id == Score.instrument_id,
            ),
        )
        .where(
            Assessment.status == AssessmentStatus.COMPLETED.value,
            Score.instrument_id.in_(selection.instrument_ids),
        )
        .order_by(Patient.study_id, Assessment.due_date, Assessment.id, position, Score.id)
    )
    if selection.site_ids is not None:
        query = query.where(Patient.site_id.in_(selection.site_ids))
    if selection.timepoints is not None:
        query = query.where(Assessment.timepoint.in_(selection.timepoints))
    if selection.date_from is not None:
        query = query.where(local_day >= literal(selection.date_from, Date))
    if selection.date_to is not None:
        query = query.where(local_day <= literal(selection.date_to, Date))
    return query


def copy_long_csv(
    session: Session,
    selection: Selection,
    out: IO[bytes],
    *,
    on_examined: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """Write the long table's rows (no header) to ``out`` as CSV.

    Returns (rows, assessments). Runs on the session's connection, so it sees the same
    transaction as the rest of the export. PostgreSQL sends one row per message; an
    assessment's rows are consecutive and share their first five cells, which is how the
    assessments are counted (for the summary and the progress bar) without parsing the CSV.
    """
    sql = str(
        long_copy_query(selection).compile(
            dialect=postgresql.dialect(),  # type: ignore[no-untyped-call]
            compile_kwargs={"literal_binds": True},
        )
    )
    connection = session.connection().connection.driver_connection
    rows = assessments = 0
    last: list[bytes] = []
    with connection.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute("SET LOCAL extra_float_digits = 1")
        with cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)") as copy:
            for chunk in copy:
                row = bytes(chunk)
                out.write(row)
                rows += 1
                key = row.split(b",", 5)[:5]
                if key != last:
                    last = key
                    assessments += 1
                    if on_examined is not None and assessments % 500 == 0:
                        on_examined(500)
    if on_examined is not None and assessments % 500:
        on_examined(assessments % 500)
    return rows, assessments
