"""The compliance report a trial publishes (CONSORT-PRO): per time point, how many
questionnaires were expected, received, and why the others are missing.

Each registered patient has one state at each time point of the schedule:

=================  ==============================================================================
state              from the stored time point
=================  ==============================================================================
not yet due        scheduled (window not open yet), or not created yet while the patient's
                   status still gives it (its anchor date, such as surgery, is not known yet)
open               open or in progress (window open, not answered yet)
complete           completed (the patient sent the answers, or a nurse entered them)
partial            the window closed with answers but no final submit (scored by the half rule)
missed             the window closed without answers; counted by its missing reason ("no reason
                   yet" until a nurse records one)
not expected       cancelled: the patient had died, withdrawn or was not operated before its
                   window; or never created and the patient's status no longer gives it (died or
                   withdrew before the surgery date was known; not operated, for the time points
                   after surgery; on the main course, for a follow-up track's)
=================  ==============================================================================

Rates, as SISAQOL-IMI defines them: **completion rate** = received / expected, where received =
complete + partial and expected = received + missed (the patients alive and on study whose
window has passed or who answered; open and not-yet-due time points are not counted until their
outcome is known); **available data rate** = received / patients registered.

One grouped query counts the time points; one counts the patients. Pure otherwise: no Flask.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..instruments.csv_dialect import formula_safe
from ..models import REPORTED_STATE, Assessment, Patient, Site
from ..scheduling.schedule import Schedule

#: The stored status -> the report's state (absent: not yet due).
STATE_OF_STATUS = REPORTED_STATE
#: The missed time points that have no recorded reason yet.
NO_REASON = "no-reason-yet"
TOTAL = "ALL"


@dataclass
class ComplianceRow:
    """One time point at one site (``site`` = :data:`TOTAL` for every site in the report)."""

    site: str
    timepoint: str
    patients: int = 0  # registered at the site(s)
    open: int = 0
    complete: int = 0
    partial: int = 0
    not_expected: int = 0
    missed_by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def missed(self) -> int:
        return sum(self.missed_by_reason.values())

    @property
    def not_yet_due(self) -> int:
        """Every registered patient without another state here (no row yet counts too)."""
        return self.patients - self.open - self.received - self.missed - self.not_expected

    @property
    def received(self) -> int:
        return self.complete + self.partial

    @property
    def expected(self) -> int:
        return self.received + self.missed

    @property
    def completion_rate(self) -> float | None:
        return self.received / self.expected if self.expected else None

    @property
    def available_data_rate(self) -> float | None:
        return self.received / self.patients if self.patients else None

    def add(self, other: ComplianceRow) -> None:
        self.patients += other.patients
        self.open += other.open
        self.complete += other.complete
        self.partial += other.partial
        self.not_expected += other.not_expected
        for reason, count in other.missed_by_reason.items():
            self.missed_by_reason[reason] = self.missed_by_reason.get(reason, 0) + count


@dataclass(frozen=True)
class ComplianceReport:
    timepoints: tuple[str, ...]  # schedule order
    sites: tuple[str, ...]  # site codes in the report, by code
    reasons: tuple[str, ...]  # the reason list's codes, then NO_REASON
    rows: dict[tuple[str, str], ComplianceRow]  # (site code or TOTAL, time point) -> row

    def for_site(self, site: str) -> list[ComplianceRow]:
        return [self.rows[(site, tp)] for tp in self.timepoints]


def compliance_report(
    session: Session,
    *,
    schedule: Schedule,
    reasons: Sequence[str],
    site_ids: frozenset[int] | None,
) -> ComplianceReport:
    """The report for the sites ``site_ids`` (None: every site), with every time point of
    ``schedule`` in its order; ``reasons`` are the missing-reason codes in list order."""
    timepoints = [tp.key for tp in schedule.timepoints]
    site_query = select(Site.id, Site.code).order_by(Site.code)
    if site_ids is not None:
        site_query = site_query.where(Site.id.in_(site_ids))
    codes = dict(session.execute(site_query).all())
    patients_query = select(Patient.site_id, Patient.status, func.count()).group_by(
        Patient.site_id, Patient.status
    )
    counts_query = (
        select(
            Patient.site_id,
            Patient.status,
            Assessment.timepoint,
            Assessment.status,
            Assessment.missing_reason,
            func.count(),
        )
        .join(Patient, Patient.id == Assessment.patient_id)
        .group_by(
            Patient.site_id,
            Patient.status,
            Assessment.timepoint,
            Assessment.status,
            Assessment.missing_reason,
        )
    )
    if site_ids is not None:
        patients_query = patients_query.where(Patient.site_id.in_(site_ids))
        counts_query = counts_query.where(Patient.site_id.in_(site_ids))
    # (site, patient status) -> patients; (site, patient status, time point) -> of them, those
    # with the time point stored.
    patients: dict[tuple[int, str], int] = {
        (site_id, patient_status): count
        for site_id, patient_status, count in session.execute(patients_query)
    }
    stored: dict[tuple[int, str, str], int] = {}
    per_site: dict[int, int] = {}
    for (site_id, _status), count in patients.items():
        per_site[site_id] = per_site.get(site_id, 0) + count

    rows = {
        (code, tp): ComplianceRow(code, tp, patients=per_site.get(site_id, 0))
        for site_id, code in codes.items()
        for tp in timepoints
    }
    for site_id, patient_status, timepoint, status, reason, count in session.execute(counts_query):
        row = rows.get((codes.get(site_id, ""), timepoint))
        if row is None:
            continue  # a time point the schedule no longer has
        held = (site_id, patient_status, timepoint)
        stored[held] = stored.get(held, 0) + count
        state = STATE_OF_STATUS.get(status, "not_yet_due")
        if state == "missed":
            key = reason or NO_REASON
            row.missed_by_reason[key] = row.missed_by_reason.get(key, 0) + count
        elif state != "not_yet_due":
            setattr(row, state, getattr(row, state) + count)
    # A time point never stored for a patient whose status no longer gives it will never come:
    # not expected, rather than not yet due for ever.
    given = {status: {tp.key for tp in schedule.timepoints_for(status)} for _s, status in patients}
    for (site_id, patient_status), count in patients.items():
        code = codes.get(site_id)
        if code is None:
            continue
        for tp in timepoints:
            if tp not in given[patient_status]:
                never = count - stored.get((site_id, patient_status, tp), 0)
                rows[(code, tp)].not_expected += never
    for tp in timepoints:
        total = ComplianceRow(TOTAL, tp)
        for code in codes.values():
            total.add(rows[(code, tp)])
        rows[(TOTAL, tp)] = total
    known = tuple(reasons)
    extra = sorted({r for row in rows.values() for r in row.missed_by_reason} - {*known, NO_REASON})
    return ComplianceReport(
        timepoints=tuple(timepoints),
        sites=tuple(codes.values()),
        reasons=(*known, *extra, NO_REASON),
        rows=rows,
    )


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def csv_header(report: ComplianceReport) -> list[str]:
    return [
        "site",
        "timepoint",
        "patients",
        "not_yet_due",
        "open",
        "complete",
        "partial",
        "missed",
        *(f"missed_{reason}" for reason in report.reasons),
        "not_expected",
        "expected",
        "received",
        "completion_rate",
        "available_data_rate",
    ]


def csv_rows(report: ComplianceReport) -> Iterable[list[str]]:
    """Every site's rows, then the totals (every figure a count; rates as proportions)."""
    for site in (*report.sites, TOTAL):
        for row in report.for_site(site):
            yield [
                formula_safe(row.site),
                formula_safe(row.timepoint),
                *map(
                    str,
                    (
                        row.patients,
                        row.not_yet_due,
                        row.open,
                        row.complete,
                        row.partial,
                        row.missed,
                        *(row.missed_by_reason.get(r, 0) for r in report.reasons),
                        row.not_expected,
                        row.expected,
                        row.received,
                    ),
                ),
                _rate(row.completion_rate),
                _rate(row.available_data_rate),
            ]


def write_csv(report: ComplianceReport, handle: IO[str]) -> int:
    """Write the report as CSV; returns the data rows written."""
    writer = csv.writer(handle)
    writer.writerow(csv_header(report))
    written = 0
    for values in csv_rows(report):
        writer.writerow(values)
        written += 1
    return written
