"""The audit trail (admins only): browse and filter the audit log, download it as CSV.

Dates and times are UTC throughout (the log is kept in UTC and inspectors compare it with other
systems' logs). The download is a POST (it writes the ``audit.exported`` event) and streams the
matching events oldest first, up to and including that event.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from flask import Response, g, render_template, request, stream_with_context, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, SelectChoice, SelectField, StringField
from wtforms.validators import Length, Optional

from ...audit import Actor, record
from ...audit.browse import (
    AuditFilterError,
    AuditFilters,
    AuditRow,
    FilterChoices,
    audit_page,
    check_filters,
    filter_choices,
    iter_audit_rows,
)
from ...extensions import db
from ...instruments.csv_dialect import formula_safe
from ...staff import access
from ..numbers import whole_number
from . import bp
from .auth import staff_page

#: How object types are named on the page; a type not listed is shown as stored.
OBJECT_TYPES = {
    "patient": _l("Patient"),
    "assessment": _l("Time point"),
    "staff_user": _l("Staff user"),
    "site": _l("Site"),
    "export": _l("Export"),
    "score": _l("Scores"),
    "audit": _l("Audit trail"),
}
FILTER_FIELDS = ("action", "actor", "site", "object_type", "object_ref", "date_from", "date_to")
CSV_COLUMNS = (
    "id",
    "at_utc",
    "actor_type",
    "actor_id",
    "actor",
    "action",
    "object_type",
    "object_id",
    "object",
    "site",
    "before",
    "after",
    "reason",
)


class AuditFilterForm(FlaskForm):  # type: ignore[misc]
    """The filters, read from the query string (GET; no CSRF token needed)."""

    class Meta:
        csrf = False

    action = SelectField(_l("Action"), choices=[], default="")
    actor = SelectField(_l("Done by"), choices=[], default="")
    site = SelectField(_l("Site"), choices=[], default="")
    object_type = SelectField(_l("Object type"), choices=[], default="")
    object_ref = StringField(_l("Object"), validators=[Optional(), Length(max=100)])
    date_from = DateField(_l("From (UTC date)"), validators=[Optional()])
    date_to = DateField(_l("To (UTC date)"), validators=[Optional()])


def _set_choices(form: AuditFilterForm, choices: FilterChoices) -> None:
    form.action.choices = [SelectChoice("", _("Any action"))] + [
        SelectChoice(a) for a in choices.actions
    ]
    others = _("Other")
    staff = _("Staff users")
    form.actor.choices = [
        SelectChoice("", _("Anyone")),
        SelectChoice("system", _("System (scheduler, jobs)"), optgroup=others),
        SelectChoice("operator", _("Operator (command line)"), optgroup=others),
        SelectChoice("patient", _("Patients (through their link)"), optgroup=others),
    ] + [SelectChoice(email, optgroup=staff) for email in choices.staff_emails]
    form.site.choices = [SelectChoice("", _("Any site"))] + [
        SelectChoice(code, f"{code} – {name}") for code, name in choices.sites
    ]
    form.object_type.choices = [SelectChoice("", _("Any object"))] + [
        SelectChoice(t, str(OBJECT_TYPES.get(t, t))) for t in choices.object_types
    ]


def _filters(form: AuditFilterForm) -> AuditFilters:
    return AuditFilters(
        action=form.action.data or None,
        actor=form.actor.data or None,
        site=form.site.data or None,
        object_type=form.object_type.data or None,
        object_ref=(form.object_ref.data or "").strip() or None,
        date_from=form.date_from.data,
        date_to=form.date_to.data,
    )


def _problem_text(exc: AuditFilterError) -> str:
    messages = {
        "unknown_staff": _("No staff user has the email %(value)s.", value=exc.value),
        "unknown_actor": _("Choose from the list."),
        "unknown_site": _("No site has the code %(value)s.", value=exc.value),
        "unknown_patient": _("No patient has the study ID %(value)s.", value=exc.value),
        "unknown_object": _("Nothing of this type is named %(value)s.", value=exc.value),
        "number_needed": _("Give the number of the object."),
        "type_needed": _("Choose the object type too."),
        "end_before_start": _("The end date is before the start date."),
    }
    return messages.get(exc.problem, _("This filter matches nothing known."))


def _cursor(name: str) -> int | None:
    return whole_number(request.args.get(name, ""), low=0)


def _filter_args(form: AuditFilterForm) -> dict[str, Any]:
    """The filters that are set, as query-string arguments (for paging links)."""
    out: dict[str, Any] = {}
    for name in FILTER_FIELDS:
        value = form[name].data
        if value:
            out[name] = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return out


def _actor_text(row: AuditRow) -> str:
    if row.actor_type == "staff":
        return row.actor_name or _("Staff user %(id)s", id=row.actor_id or "?")
    if row.actor_type == "patient":
        return _("Patient %(study_id)s", study_id=row.actor_name or row.actor_id or "?")
    if row.actor_type == "system":
        return _("System (%(name)s)", name=row.actor_id or "?")
    if row.actor_type == "operator":
        return _("Operator (%(name)s)", name=row.actor_id or "?")
    return f"{row.actor_type} {row.actor_id or ''}".strip()


def _object_type_text(row: AuditRow) -> str:
    return (
        "" if row.object_type is None else str(OBJECT_TYPES.get(row.object_type, row.object_type))
    )


@bp.get("/audit")
@staff_page(*access.ADMIN_ROLES)
def audit_trail() -> ResponseReturnValue:
    form = AuditFilterForm(formdata=request.args)
    _set_choices(form, filter_choices(db.session))
    return _render(form)


def _render(form: AuditFilterForm, status: int = 200) -> ResponseReturnValue:
    page = None
    if form.validate():
        try:
            page = audit_page(
                db.session, _filters(form), before=_cursor("before"), after=_cursor("after")
            )
        except AuditFilterError as exc:
            form[exc.field].errors = [*form[exc.field].errors, _problem_text(exc)]
    if form.errors:
        status = 400
    args = _filter_args(form)
    return render_template(
        "staff/audit.html",
        form=form,
        filter_args=args,
        page=page,
        filtered=bool(args),
        older_url=page and page.older and url_for(".audit_trail", **args, before=page.older),
        newer_url=page and page.newer and url_for(".audit_trail", **args, after=page.newer),
        newest_url=url_for(".audit_trail", **args),
        actor_text=_actor_text,
        object_type_text=_object_type_text,
    ), status


@bp.post("/audit/export")
@staff_page(*access.ADMIN_ROLES)
def audit_trail_export() -> ResponseReturnValue:
    # The same filters, posted (CSRFProtect checks the token) because the download is recorded.
    form = AuditFilterForm(formdata=request.form)
    _set_choices(form, filter_choices(db.session))
    if not form.validate():
        return _render(form, 400)
    filters = _filters(form)
    try:
        check_filters(db.session, filters)
    except AuditFilterError as exc:
        form[exc.field].errors = [*form[exc.field].errors, _problem_text(exc)]
        return _render(form, 400)
    event = record(
        db.session,
        now=g.now,
        actor=Actor.staff(g.user.id),
        action="audit.exported",
        object_type="audit",
        after={"filters": filters.describe()},
    )
    db.session.flush()
    up_to = event.id
    db.session.commit()
    stamp = g.now.strftime("%Y-%m-%d")
    response = Response(
        stream_with_context(_csv_lines(filters, up_to)), mimetype="text/csv; charset=utf-8"
    )
    response.headers["Content-Disposition"] = f'attachment; filename="audit-trail-{stamp}.csv"'
    return response


def _safe_cell(value: Any) -> Any:
    """Text that a spreadsheet would run as a formula gets a leading apostrophe."""
    return formula_safe(value) if isinstance(value, str) else value


def _json(value: Any) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=False)


def _csv_lines(filters: AuditFilters, up_to: int) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for n, row in enumerate(iter_audit_rows(db.session, filters, up_to_id=up_to), 1):
        writer.writerow(
            [
                _safe_cell(cell)
                for cell in (
                    row.id,
                    row.at.isoformat(),
                    row.actor_type,
                    row.actor_id or "",
                    row.actor_name or "",
                    row.action,
                    row.object_type or "",
                    row.object_id or "",
                    row.object_name or "",
                    row.site_code or "",
                    _json(row.before),
                    _json(row.after),
                    row.reason or "",
                )
            ]
        )
        if n % 200 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
