"""Sites (``/staff/admin/sites``): create and edit; the checks live in
:mod:`pro_service.staff.accounts`."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import (
    SelectField,
    StringField,
)
from wtforms.validators import DataRequired, Length, Optional

from ....audit import Actor
from ....extensions import db
from ....models import Site
from ....staff.accounts import (
    SiteFields,
    SiteFieldsError,
    StaffDataError,
    check_site_code,
    check_site_fields,
    create_site,
    update_site,
)
from .. import bp
from .accounts import language_choices
from .confirm import admin_page

# --- Sites ----------------------------------------------------------------------------------


class SiteForm(FlaskForm):  # type: ignore[misc]
    code = StringField(_l("Code (e.g. SE-UPP)"), validators=[DataRequired(), Length(max=32)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    country = StringField(
        _l("Country (two letters, e.g. SE or FI)"), validators=[DataRequired(), Length(max=2)]
    )
    time_zone = StringField(
        _l("Time zone (e.g. Europe/Stockholm)"), validators=[DataRequired(), Length(max=64)]
    )
    default_language = SelectField(_l("Patients' language unless chosen"), choices=[])
    sending_start = StringField(
        _l("SMS are sent from (site time)"), validators=[DataRequired(), Length(max=5)]
    )
    sending_end = StringField(_l("until"), validators=[DataRequired(), Length(max=5)])
    sms_sender = StringField(
        _l("SMS sender (name of 3-11 letters and digits, or a number; empty: the default)"),
        validators=[Optional(), Length(max=16)],
    )
    study_id_pattern = StringField(
        _l("Study ID format (a regular expression; empty: any)"),
        validators=[Optional(), Length(max=200)],
    )

    def fill_choices(self) -> None:
        self.default_language.choices = language_choices()


#: The staff pages' words for a site value that is refused, by field.
SITE_ERRORS = {
    "code": _l("Use 2-32 capital letters, digits or dashes, not a code another site has."),
    "name": _l("Give a name of at most 200 characters."),
    "country": _l("Use a two-letter country code such as SE or FI."),
    "time_zone": _l("Use a time zone name such as Europe/Stockholm or Europe/Helsinki."),
    "default_language": _l("Choose Swedish, Finnish or English."),
    "sending_start": _l("Use a time such as 09:00."),
    "sending_end": _l("Use a time such as 20:00, later than the start."),
    "study_id_pattern": _l("This is not a valid regular expression."),
    "sms_sender": _l(
        "Use a sender name of 3-11 letters and digits (not only digits), or a number such as "
        "+46701234567."
    ),
}


def _site_error(form: SiteForm, error: StaffDataError) -> None:
    """Each bad field's message beside it (every one of them, at once)."""
    fields = [f for f, _ in error.problems] if isinstance(error, SiteFieldsError) else [error.field]
    for name in fields:
        field = getattr(form, name)
        field.errors = [*field.errors, str(SITE_ERRORS[name])]


def _checked_site(form: SiteForm, site: Site | None) -> tuple[str, SiteFields] | None:
    """The code and the other fields checked (``site``: the one being edited), or None with
    every bad field's message put beside it."""
    code = fields = None
    try:
        code = check_site_code(db.session, form.code.data, site=site)
    except StaffDataError as error:
        _site_error(form, error)
    try:
        fields = check_site_fields(
            name=form.name.data,
            country=form.country.data.strip(),
            time_zone=form.time_zone.data.strip(),
            default_language=form.default_language.data,
            study_id_pattern=form.study_id_pattern.data,
            sending_start=form.sending_start.data.strip(),
            sending_end=form.sending_end.data.strip(),
            sms_sender=form.sms_sender.data,
        )
    except StaffDataError as error:
        _site_error(form, error)
    return None if code is None or fields is None else (code, fields)


@bp.get("/admin/sites")
@admin_page
def admin_sites() -> ResponseReturnValue:
    sites = list(db.session.scalars(select(Site).order_by(Site.code)))
    return render_template("staff/admin/sites.html", sites=sites)


@bp.route("/admin/sites/new", methods=["GET", "POST"])
@admin_page
def admin_new_site() -> ResponseReturnValue:
    form = SiteForm()
    form.fill_choices()
    if not form.is_submitted():
        form.sending_start.data, form.sending_end.data = "09:00", "20:00"
        form.default_language.data = "sv"
        return render_template("staff/admin/site.html", form=form, site=None)
    if form.validate():
        checked = _checked_site(form, None)
        if checked is not None:
            code, fields = checked
            site = create_site(
                db.session,
                now=g.now,
                actor=Actor.staff(g.user.id),
                code=code,
                **fields.__dict__,
            )
            db.session.commit()
            flash(_("Site %(code)s is created.", code=site.code), "info")
            return redirect(url_for("staff.admin_sites"))
    return render_template("staff/admin/site.html", form=form, site=None), 400


@bp.route("/admin/sites/<id:site_id>", methods=["GET", "POST"])
@admin_page
def admin_site(site_id: int) -> ResponseReturnValue:
    site = db.session.get(Site, site_id)
    if site is None:
        abort(404)
    form = SiteForm(obj=None if request.method == "POST" else site)
    form.fill_choices()
    if request.method == "GET":
        return render_template("staff/admin/site.html", form=form, site=site)
    if form.validate():
        checked = _checked_site(form, site)
        if checked is not None:
            code, fields = checked
            changed = update_site(
                db.session,
                now=g.now,
                actor=Actor.staff(g.user.id),
                site=site,
                changes=fields,
                code=code,
            )
            db.session.commit()
            flash(_("Saved.") if changed else _("Nothing was changed."), "info")
            return redirect(url_for("staff.admin_site", site_id=site.id))
    return render_template("staff/admin/site.html", form=form, site=site), 400
