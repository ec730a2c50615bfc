"""The wide table from one per-assessment query: on PostgreSQL, scores and answers are pivoted
in SQL (one ``FILTER`` aggregate per column), one row per assessment.

* CSV: ``COPY (SELECT ...) TO STDOUT WITH CSV``, which PostgreSQL writes itself; it gives
  exactly the bytes of the Python path (:func:`.tables.wide_csv_rows` over
  :func:`.source.iter_assessments`, used on SQLite), which the tests check with every filter.
* SPSS / Stata: the same query without the text formatting, streamed through a server-side
  cursor, gives the typed rows of :func:`.tables.wide_rows`.

Either way memory holds a batch of rows, whatever the number of assessments. The rules, as in
:mod:`.source` and :mod:`.tables`:

* every time point (or the completed ones) in the selected sites and time points, completed
  (or, not completed, due) on a local calendar day at the site within the date range, holding
  at least one selected instrument (an instrument reference ``id:version`` known to the
  registry; a bare ``id`` is its newest
  version); in study ID, due date, assessment order;
* each instrument's version from the assessment's references (the last one naming it); the
  algorithm versions of its scores, distinct, sorted by code point and joined by ``;``;
* each score by its scale code and each answer by its item number, of the selected instruments;
* text as in the long table: times ``YYYY-MM-DDTHH:MM:SSZ``, a score as the shortest text that
  reads back as the same double (``extra_float_digits = 1``), missing as empty.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

from sqlalchemy import BindParameter, Date, Integer, String, TextClause, bindparam, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from ..instruments import InstrumentRegistry
from ..instruments.csv_dialect import formula_safe_sql
from ..models import REPORTED_STATE, AssessmentStatus
from .layout import WideLayout, wide_layout
from .source import Selection, iter_assessments, known_references
from .tables import Cell, Counted, wide_csv_rows, wide_rows

#: Rows between two progress reports, and rows fetched at a time for SPSS / Stata.
REPORT_EVERY = 500
ISO_UTC = 'YYYY-MM-DD"T"HH24:MI:SS"Z"'
#: The query's estimates are far too high (an aggregate per column), which turns PostgreSQL's
#: JIT compilation on: it took 3 of the 4.5 s of a 10,000-assessment export, and saves nothing.
NO_JIT = "SET LOCAL jit = off"


def uses_pivot_query(session: Session) -> bool:
    """Whether the wide table comes from :func:`wide_pivot_query` (PostgreSQL)."""
    return session.get_bind().dialect.name == "postgresql"


def _typed(name: str, value: Any) -> BindParameter[Any]:
    """A bound parameter with its SQL type (the COPY renders it as a literal)."""
    if isinstance(value, list):
        element = Integer() if value and isinstance(value[0], int) else String()
        return bindparam(name, value, type_=element, expanding=True)
    kind = Date() if isinstance(value, date) else Integer() if isinstance(value, int) else String()
    return bindparam(name, value, type_=kind)


def wide_pivot_query(
    selection: Selection, registry: InstrumentRegistry, *, as_text: bool
) -> TextClause:
    """The wide table's SELECT, one row per assessment, in the layout's column order.

    ``as_text``: the completion time formatted for CSV (else the timestamp itself).
    """
    layout: WideLayout = wide_layout(selection.instruments)
    params: dict[str, Any] = {"instrument_ids": list(selection.instrument_ids)}
    if selection.completed_only:
        params["completed"] = AssessmentStatus.COMPLETED.value
    known = known_references(selection, registry)
    known_rows = []
    for n, row in enumerate(known):
        params.update({f"ref{n}": row[0], f"ref_id{n}": row[1], f"ref_version{n}": row[2]})
        known_rows.append(f"(:ref{n}, :ref_id{n}, :ref_version{n})")

    versions = []
    for n, variable in enumerate(layout.versions):
        params[f"version_of{n}"] = variable.instrument
        versions.append(
            f"(array_agg(k.version ORDER BY r.n DESC) FILTER "
            f"(WHERE k.instrument_id = :version_of{n}))[1] AS v{n}"
        )
    scores = []
    for n, (_, variable) in enumerate(layout.scores):
        params[f"scale{n}"] = variable.name
        scores.append(f"max(s.value) FILTER (WHERE s.scale = :scale{n}) AS s{n}")
    items = [
        f"max(r.code) FILTER (WHERE r.item_number = {int(number)}) AS i{n}"
        for n, (number, _) in enumerate(layout.items)
    ]

    chosen = ["a.status = :completed"] if selection.completed_only else ["TRUE"]
    if selection.site_ids is not None:
        chosen.append("p.site_id IN :site_ids")
        params["site_ids"] = list(selection.site_ids)
    if selection.timepoints is not None:
        chosen.append("a.timepoint IN :timepoints")
        params["timepoints"] = list(selection.timepoints)
    day = "coalesce((a.completed_at AT TIME ZONE si.time_zone)::date, a.due_date)"
    if selection.date_from is not None:
        chosen.append(f"{day} >= :date_from")
        params["date_from"] = selection.date_from
    if selection.date_to is not None:
        chosen.append(f"{day} <= :date_to")
        params["date_to"] = selection.date_to
    states = []
    for n, (status, state) in enumerate(REPORTED_STATE.items()):
        params.update({f"status{n}": status, f"state{n}": state})
        states.append(f"WHEN :status{n} THEN :state{n}")

    completed = (
        f"to_char(c.completed_at AT TIME ZONE 'UTC', '{ISO_UTC}')" if as_text else "c.completed_at"
    )
    # CSV text is formula-safe as the Python path writes it; sav/dta get the values as stored.
    study_id = formula_safe_sql("c.study_id") if as_text else "c.study_id"
    site = formula_safe_sql("c.site") if as_text else "c.site"
    version_columns = "".join(f", v.v{n}" for n in range(len(versions)))
    score_columns = "".join(f", s.s{n}" for n in range(len(scores)))
    item_columns = "".join(f", r.i{n}" for n in range(len(items)))
    # Every value is a bound parameter; only generated aliases and item numbers (int) are
    # written into the text.
    sql = f"""
WITH known(ref, instrument_id, version) AS (VALUES {", ".join(known_rows)}),
chosen AS (
    SELECT a.id, a.due_date, a.timepoint, a.completed_at, a.language, a.instruments,
           CASE a.status {" ".join(states)} ELSE a.status END AS state,
           a.missing_reason, a.mode, a.review_flag,
           p.study_id, si.code AS site,
           (a.completed_at AT TIME ZONE si.time_zone)::date - p.surgery_date AS days
    FROM assessments a
    JOIN patients p ON p.id = a.patient_id
    JOIN sites si ON si.id = p.site_id
    WHERE {" AND ".join(chosen)}
),
s AS (
    SELECT s.assessment_id,
           (SELECT string_agg(x, ';' ORDER BY x COLLATE "C")
            FROM unnest(array_agg(DISTINCT s.algorithm_version)) AS x) AS algorithms
           {"".join(", " + column for column in scores)}
    FROM scores s
    WHERE s.instrument_id IN :instrument_ids AND s.assessment_id IN (SELECT id FROM chosen)
    GROUP BY s.assessment_id
),
r AS (
    SELECT r.assessment_id {"".join(", " + column for column in items)}
    FROM responses r
    WHERE r.instrument_id IN :instrument_ids AND r.assessment_id IN (SELECT id FROM chosen)
    GROUP BY r.assessment_id
)
SELECT {study_id}, {site}, c.timepoint, c.days, {completed}, c.state, c.missing_reason,
       c.mode, c.review_flag, c.language
       {version_columns}, s.algorithms {score_columns} {item_columns}
FROM chosen c
CROSS JOIN LATERAL (
    SELECT count(k.ref) AS held {"".join(", " + column for column in versions)}
    FROM json_array_elements_text(c.instruments) WITH ORDINALITY AS r(ref, n)
    JOIN known k ON k.ref = r.ref
) v
LEFT JOIN s ON s.assessment_id = c.id
LEFT JOIN r ON r.assessment_id = c.id
WHERE v.held > 0
ORDER BY c.study_id, c.due_date, c.id
"""  # noqa: S608
    return text(sql).bindparams(*(_typed(name, value) for name, value in params.items()))


class WideTable:
    """The wide table as CSV lines (bytes, the header first), for a file or a download.

    From one COPY of :func:`wide_pivot_query` on PostgreSQL, else (or with ``by_copy=False``)
    built in Python from :func:`.source.iter_assessments`. Either way it runs in the session's
    transaction and, once iterated, ``rows`` says how many assessments (data rows) it held.
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
        self.by_copy = uses_pivot_query(session) if by_copy is None else by_copy
        self.rows = 0

    @property
    def assessments(self) -> int:
        return self.rows

    def __iter__(self) -> Iterator[bytes]:
        layout = wide_layout(self.selection.instruments)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(layout.names)
        yield buffer.getvalue().encode("utf-8")
        yield from self._copied() if self.by_copy else self._built(layout, buffer, writer)

    def _built(self, layout: WideLayout, buffer: io.StringIO, writer: Any) -> Iterator[bytes]:
        assessments = iter_assessments(
            self.session, self.selection, registry=self.registry, on_examined=self.on_examined
        )
        for row in wide_csv_rows(layout, assessments):
            buffer.seek(0)
            buffer.truncate()
            writer.writerow(row)
            self.rows += 1
            yield buffer.getvalue().encode("utf-8")

    def _copied(self) -> Iterator[bytes]:
        query = wide_pivot_query(self.selection, self.registry, as_text=True)
        sql = str(
            query.compile(
                dialect=postgresql.dialect(),  # type: ignore[no-untyped-call]
                compile_kwargs={"literal_binds": True},
            )
        )
        connection = self.session.connection().connection.driver_connection
        unreported = 0
        with connection.cursor() as cursor:  # type: ignore[union-attr]
            cursor.execute("SET LOCAL extra_float_digits = 1")
            cursor.execute(NO_JIT)
            with cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)") as copy:
                for chunk in copy:  # one row per message
                    self.rows += 1
                    unreported += 1
                    if self.on_examined is not None and unreported == REPORT_EVERY:
                        self.on_examined(unreported)
                        unreported = 0
                    yield bytes(chunk)
        if self.on_examined is not None and unreported:
            self.on_examined(unreported)


def typed_wide_rows(
    session: Session,
    selection: Selection,
    *,
    registry: InstrumentRegistry,
    on_examined: Callable[[int], None] | None = None,
    by_query: bool | None = None,
) -> Counted[tuple[Cell, ...]]:
    """The wide table's rows, typed (for SPSS and Stata), counted as they go by.

    From :func:`wide_pivot_query` through a server-side cursor on PostgreSQL, else built in
    Python from :func:`.source.iter_assessments` (:func:`.tables.wide_rows`).
    """
    if not (uses_pivot_query(session) if by_query is None else by_query):
        layout = wide_layout(selection.instruments)
        assessments = iter_assessments(
            session, selection, registry=registry, on_examined=on_examined
        )
        return Counted(wide_rows(layout, assessments))
    return Counted(_queried_rows(session, selection, registry, on_examined))


def _queried_rows(
    session: Session,
    selection: Selection,
    registry: InstrumentRegistry,
    on_examined: Callable[[int], None] | None,
) -> Iterator[tuple[Cell, ...]]:
    query = wide_pivot_query(selection, registry, as_text=False)
    session.execute(text(NO_JIT))
    result = session.execute(query.execution_options(yield_per=REPORT_EVERY))
    # The size is given: yield_per fetches in batches but does not size a text query's partitions.
    for partition in result.partitions(REPORT_EVERY):
        yield from map(tuple, partition)
        if on_examined is not None:
            on_examined(len(partition))
