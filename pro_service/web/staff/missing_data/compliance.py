"""The compliance report (``/staff/compliance``): per time point, questionnaires expected,
received and missing by reason, with the completion and available data rates; as a page with a
chart, and as CSV (the same table as ``pro-service compliance``).

Every staff role sees it for the sites it holds: a nurse their own sites, the others their sites
or all sites (per site, and in total when there are several). Counts only, no patient.
"""

from __future__ import annotations

import io

from flask import Response, current_app, g, render_template
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from ....audit import Actor, record
from ....compliance import NO_REASON, TOTAL, ComplianceReport, compliance_report, write_csv
from ....extensions import db
from ....models import Role
from ....staff import access
from ...i18n import request_language
from .. import bp
from ..auth import staff_page

ALL_ROLES = tuple(r.value for r in Role)


def _report() -> ComplianceReport:
    schedule = current_app.extensions["schedule"]
    reasons = current_app.extensions["missing_reasons"]
    return compliance_report(
        db.session,
        schedule=schedule,
        reasons=reasons.codes,
        site_ids=access.visible_site_ids(g.user),
    )


def _chart(report: ComplianceReport, site: str, labels: dict[str, str]) -> list[dict[str, object]]:
    """Bars of the two rates per time point, in percent (None: no figure yet)."""
    bars: list[dict[str, object]] = []
    for row in report.for_site(site):
        completion, available = row.completion_rate, row.available_data_rate
        bars.append(
            {
                "label": labels[row.timepoint],
                "completion": None if completion is None else round(100 * completion),
                "available": None if available is None else round(100 * available),
            }
        )
    return bars


@bp.get("/compliance")
@staff_page(*ALL_ROLES)
def compliance() -> ResponseReturnValue:
    report = _report()
    language = request_language()
    schedule = current_app.extensions["schedule"]
    reasons = current_app.extensions["missing_reasons"]
    labels = {tp.key: tp.label.get(language, tp.label["en"]) for tp in schedule.timepoints}
    reason_labels = {
        code: (reasons.get(code).label(language) if reasons.get(code) else code)
        for code in report.reasons
    }
    reason_labels[NO_REASON] = _("No reason recorded yet")
    sections = [(code, report.for_site(code)) for code in report.sites]
    total = report.for_site(TOTAL) if len(report.sites) > 1 else None
    chart_site = TOTAL if total is not None else (report.sites[0] if report.sites else None)
    return render_template(
        "staff/compliance.html",
        report=report,
        sections=sections,
        total=total,
        labels=labels,
        reason_labels=reason_labels,
        chart=None if chart_site is None else _chart(report, chart_site, labels),
    )


@bp.get("/compliance.csv")
@staff_page(*ALL_ROLES)
def compliance_csv() -> ResponseReturnValue:
    report = _report()
    buffer = io.StringIO()
    rows = write_csv(report, buffer)
    record(
        db.session,
        now=g.now,
        actor=Actor.staff(g.user.id),
        action="compliance.downloaded",
        object_type="report",
        after={"sites": list(report.sites), "rows": rows},
    )
    db.session.commit()
    return Response(
        buffer.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="compliance.csv"'},
    )
