"""The long table, and on PostgreSQL one ``COPY (SELECT ...) TO STDOUT WITH CSV`` that writes it.

The long table has a row per stored score, hundreds of thousands for a study; building each in
Python costs several times what PostgreSQL needs to write them. On PostgreSQL the whole table
is therefore one query that PostgreSQL itself writes as CSV. It gives exactly the bytes of the
Python path (:func:`.tables.long_csv_rows`, used on SQLite), which the tests check on the same
data with every filter. :class:`LongTable` picks the path; files and downloads both use it.

* the same time points: every one (or the completed ones), in the selected sites and time
  points, completed (or, not completed, due) on a local calendar day at the site within the
  date range, holding a selected instrument; one row per score, or one row with empty score
  columns for a time point without scores;
* the same order: study ID, due date, assessment, then :attr:`Selection.scale_order`;
* the same text: times as ``YYYY-MM-DDTHH:MM:SSZ`` (UTC, whole seconds), scores as the
  shortest text that reads back as the same double (PostgreSQL's ``extra_float_digits = 1``;
  the Python path writes e.g. ``50`` rather than ``50.0`` to match), missing as empty;
* the language of each instrument's answers (kept with its scores), else the assessment's.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import (
    Date,
    Integer,
    String,
    and_,
    case,
    cast,
    column,
    exists,
    func,
    literal,
    literal_column,
    select,
    type_coerce,
    values,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from ..instruments import InstrumentRegistry
from ..instruments.csv_dialect import formula_safe_sql
from ..models import REPORTED_STATE, Assessment, AssessmentStatus, Patient, Score, Site
from .layout import long_variables
from .source import Selection, iter_assessments, known_references
from .tables import Counted, long_csv_rows

#: Assessments between two progress reports.
REPORT_EVERY = 500
ISO_UTC = 'YYYY-MM-DD"T"HH24:MI:SS"Z"'


def long_copy_query(selection: Selection, references: Sequence[str]) -> Any:
    """The SELECT of the long table's columns, filtered and ordered as the export is.

    ``references``: the instrument references (``id:version`` or ``id``) that name a selected
    instrument (:func:`.source.known_references`); a time point holding none is left out.
    """
    completed_day = cast(func.timezone(Site.time_zone, Assessment.completed_at), Date)
    day = func.coalesce(completed_day, Assessment.due_date)
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
    held = func.json_array_elements_text(Assessment.instruments).table_valued("value")
    query = (
        select(
            # The tables are not aliased: the expressions name them.
            literal_column(formula_safe_sql("patients.study_id")),
            literal_column(formula_safe_sql("sites.code")),
            Assessment.timepoint,
            type_coerce(completed_day - Patient.surgery_date, Integer),
            func.to_char(func.timezone("UTC", Assessment.completed_at), ISO_UTC),
            case(REPORTED_STATE, value=Assessment.status, else_=Assessment.status),
            Assessment.missing_reason,
            Assessment.mode,
            Assessment.review_flag,
            Score.instrument_id,
            Score.instrument_version,
            case(
                (Score.id.is_(None), None),
                else_=func.coalesce(Score.language, Assessment.language),
            ),
            Score.scale,
            Score.value,
            Score.items_in_scale,
            Score.items_answered,
            Score.algorithm_version,
        )
        .select_from(Assessment)
        .join(Patient, Assessment.patient_id == Patient.id)
        .join(Site, Patient.site_id == Site.id)
        .outerjoin(
            Score,
            and_(
                Score.assessment_id == Assessment.id,
                Score.instrument_id.in_(selection.instrument_ids),
            ),
        )
        .outerjoin(
            positions,
            and_(
                positions.c.instrument_id == Score.instrument_id,
                positions.c.scale == Score.scale,
            ),
        )
        .where(exists(select(literal(1)).select_from(held).where(held.c.value.in_(references))))
        .order_by(Patient.study_id, Assessment.due_date, Assessment.id, position, Score.id)
    )
    if selection.completed_only:
        query = query.where(Assessment.status == AssessmentStatus.COMPLETED.value)
    if selection.site_ids is not None:
        query = query.where(Patient.site_id.in_(selection.site_ids))
    if selection.timepoints is not None:
        query = query.where(Assessment.timepoint.in_(selection.timepoints))
    if selection.date_from is not None:
        query = query.where(day >= literal(selection.date_from, Date))
    if selection.date_to is not None:
        query = query.where(day <= literal(selection.date_to, Date))
    return query


class LongTable:
    """The long table as CSV lines (bytes, the header first), for a file or a download.

    From one COPY on PostgreSQL, else (or with ``by_copy=False``) built in Python from
    :func:`.source.iter_assessments`. Either way it runs in the session's transaction and, once
    iterated, ``rows`` and ``assessments`` say how many data rows and assessments it held.
    """

    def __init__(
        self,
        session: Session,
        selection: Selection,
        *,
        registry: InstrumentRegistry,
        on_examined: Callable[[int], None] | None = None,
        by_copy: bool | None = None,
    ) -> None:
        self.session = session
        self.selection = selection
        self.registry = registry
        self.on_examined = on_examined
        self.by_copy = (
            session.get_bind().dialect.name == "postgresql" if by_copy is None else by_copy
        )
        self.rows = 0
        self.assessments = 0

    def __iter__(self) -> Iterator[bytes]:
        header = ",".join(v.name for v in long_variables(self.selection.instruments))
        yield (header + "\n").encode("utf-8")
        yield from self._copied() if self.by_copy else self._built()

    def _built(self) -> Iterator[bytes]:
        assessments = Counted(
            iter_assessments(
                self.session,
                self.selection,
                registry=self.registry,
                on_examined=self.on_examined,
                with_answers=False,
            )
        )
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        for row in long_csv_rows(assessments):
            buffer.seek(0)
            buffer.truncate()
            writer.writerow(row)
            self.rows += 1
            self.assessments = assessments.count
            yield buffer.getvalue().encode("utf-8")
        self.assessments = assessments.count

    def _copied(self) -> Iterator[bytes]:
        """PostgreSQL sends one row per message. An assessment's rows are consecutive and share
        their first eight cells: that is how assessments are counted without parsing the CSV.
        """
        sql = str(
            long_copy_query(
                self.selection,
                [ref for ref, _, _ in known_references(self.selection, self.registry)],
            ).compile(
                dialect=postgresql.dialect(),  # type: ignore[no-untyped-call]
                compile_kwargs={"literal_binds": True},
            )
        )
        connection = self.session.connection().connection.driver_connection
        last: list[bytes] = []
        unreported = 0
        with connection.cursor() as cursor:  # type: ignore[union-attr]
            cursor.execute("SET LOCAL extra_float_digits = 1")
            with cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)") as copy:
                for chunk in copy:
                    row = bytes(chunk)
                    self.rows += 1
                    key = row.split(b",", 8)[:8]
                    if key != last:
                        last = key
                        self.assessments += 1
                        unreported += 1
                        if self.on_examined is not None and unreported == REPORT_EVERY:
                            self.on_examined(unreported)
                            unreported = 0
                    yield row
        if self.on_examined is not None and unreported:
            self.on_examined(unreported)
