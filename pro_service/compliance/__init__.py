"""Compliance with the questionnaire schedule, as a trial reports it (CONSORT-PRO): per time
point, questionnaires expected, received and missing by reason, with the SISAQOL-IMI rates."""

from .report import (
    NO_REASON,
    TOTAL,
    ComplianceReport,
    ComplianceRow,
    compliance_report,
    write_csv,
)

__all__ = [
    "NO_REASON",
    "TOTAL",
    "ComplianceReport",
    "ComplianceRow",
    "compliance_report",
    "write_csv",
]
