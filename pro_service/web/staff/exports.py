"""Export downloads for data managers and admins: the form, and the ZIP (data + dictionary).

Who may export which sites is :func:`pro_service.exports.access.export_scope`; other roles get
404. The download is :func:`pro_service.web.staff.downloads.export_response`, whose audit event is
committed before the streamed response is returned. A filter that matches nothing gives what the
command line gives: the header only (CSV), the variables with no rows (sav, dta) or the
Questionnaires only (FHIR). Filter problems are shown next to their field (status 400).
"""

from __future__ import annotations

from flask import abort, current_app, g, render_template
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, DateField, RadioField, SelectChoice, SelectField
from wtforms.validators import InputRequired, Optional

from ...audit import Actor
from ...exports import ExportFilterError, ExportFilters
from ...exports.access import EXPORT_ROLES, ExportForbidden, export_scope
from ...extensions import db
from ...models import Assessment, Site
from ..i18n import request_language
from . import bp
from .auth import staff_page
from .downloads import export_response

FORMATS = [
    SelectChoice(
        "wide", _l("Wide CSV: one row per patient and time point, every score and answer")
    ),
    SelectChoice("long", _l("Long CSV: one row per patient, time point and scale")),
    SelectChoice("sav", _l("SPSS (.sav): the wide table with variable and value labels")),
    SelectChoice("dta", _l("Stata (.dta): the wide table with variable and value labels")),
    SelectChoice(
        "fhir", _l("FHIR R4 (NDJSON): Questionnaires, QuestionnaireResponses, Observations")
    ),
]


class ExportForm(FlaskForm):  # type: ignore[misc]
    fmt = RadioField(_l("Format"), choices=FORMATS, default="wide", validators=[InputRequired()])
    site = SelectField(_l("Site"), choices=[], default="")
    timepoint = SelectField(_l("Time point"), choices=[], default="")
    instrument = SelectField(_l("Questionnaire"), choices=[], default="")
    date_from = DateField(_l("Completed on or after"), validators=[Optional()])
    date_to = DateField(_l("Completed on or before"), validators=[Optional()])
    completed_only = BooleanField(_l("Completed time points only"))


def _label(text: dict[str, str] | object, fallback: str) -> str:
    if isinstance(text, dict):
        language = request_language()
        return str(text.get(language) or text.get("en") or fallback)
    return fallback


def _set_choices(form: ExportForm, scope: frozenset[int] | None) -> None:
    """Sites in the user's scope; the schedule's time points (and any others stored)."""
    sites = select(Site.code, Site.name).order_by(Site.code)
    if scope is not None:
        sites = sites.where(Site.id.in_(sorted(scope)))
    form.site.choices = [SelectChoice("", _("All your sites"))] + [
        SelectChoice(code, f"{code} – {name}") for code, name in db.session.execute(sites)
    ]
    schedule = current_app.extensions["schedule"]
    timepoints = [SelectChoice(tp.key, _label(tp.label, tp.key)) for tp in schedule.timepoints]
    known = {choice.value for choice in timepoints}
    stored = db.session.scalars(select(Assessment.timepoint).distinct().order_by("timepoint"))
    timepoints += [SelectChoice(key) for key in stored if key not in known]
    form.timepoint.choices = [SelectChoice("", _("All time points")), *timepoints]
    registry = current_app.extensions["instruments"]
    form.instrument.choices = [SelectChoice("", _("All questionnaires"))] + [
        SelectChoice(i.id, _label(dict(i.name), i.id)) for i in registry.latest()
    ]


def _filters(form: ExportForm) -> ExportFilters:
    return ExportFilters(
        sites=(form.site.data,) if form.site.data else (),
        timepoints=(form.timepoint.data,) if form.timepoint.data else (),
        instruments=(form.instrument.data,) if form.instrument.data else (),
        date_from=form.date_from.data,
        date_to=form.date_to.data,
        completed_only=bool(form.completed_only.data),
    )


def _show_filter_error(form: ExportForm, exc: ExportFilterError) -> None:
    """The engine's filter error, in the user's language, next to the field it names."""
    if exc.option == "site":
        field = form.site
        message = _("No site %(code)s among the sites you may export.", code=field.data)
    elif exc.option == "timepoint":
        field = form.timepoint
        message = _("No time point %(key)s.", key=field.data)
    elif exc.option == "instrument":
        field = form.instrument
        message = _("No questionnaire %(id)s.", id=field.data)
    else:  # "from" / "to": the range is upside down
        field = form.date_to
        message = _("The end date is before the start date.")
    field.errors = [*field.errors, message]


@bp.route("/exports", methods=["GET", "POST"])
@staff_page(*EXPORT_ROLES)
def exports() -> ResponseReturnValue:
    try:
        scope = export_scope(g.user)
    except ExportForbidden:
        abort(404)
    form = ExportForm()
    _set_choices(form, scope)
    if form.validate_on_submit():
        try:
            response = export_response(
                db.session,
                fmt=form.fmt.data,
                filters=_filters(form),
                actor=Actor.staff(g.user.id),
                now=g.now,
                allowed_site_ids=scope,
            )
        except ExportFilterError as exc:
            db.session.rollback()
            _show_filter_error(form, exc)
        else:
            db.session.commit()  # the audit event, before a single byte is sent
            return response
    status = 400 if form.errors else 200
    return render_template("staff/exports.html", form=form, site_bound=scope is not None), status
