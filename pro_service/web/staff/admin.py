"""Administration (``/staff/admin``): staff accounts and sites, for the admin role only.

Every page here wants a two-factor code entered in the last 15 minutes (``/staff/admin/confirm``
asks for one otherwise). The rules (the last administrator, one's own rights) live in
:mod:`pro_service.staff.administration`; sites' checks in :mod:`pro_service.staff.accounts`.
A set-password link is shown once, in the answer to the POST that made it, and never again.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import (
    BooleanField,
    EmailField,
    SelectField,
    SelectMultipleField,
    StringField,
    widgets,
)
from wtforms.validators import DataRequired, Length, Optional

from ...audit import Actor
from ...extensions import db
from ...models import Site, StaffUser
from ...staff import administration, password_links, sign_in, two_factor
from ...staff.accounts import (
    StaffDataError,
    check_site_code,
    check_site_fields,
    create_site,
    update_site,
)
from ...staff.administration import AdminError
from ..i18n import LANGUAGE_NAMES
from . import bp
from .account import ROLE_LABELS
from .auth import CodeForm, _safe_next, attempt_of, count_failure, refuse_if_throttled, staff_page
from .auth import settle_success as _settle

F = TypeVar("F", bound=Callable[..., ResponseReturnValue])


def admin_page(view: F) -> F:
    """An admin's page, with a two-factor code from the last 15 minutes."""

    @wraps(view)
    def fresh(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        if not sign_in.second_factor_is_fresh(g.staff_session, now=g.now):
            target = request.full_path.rstrip("?") if request.method == "GET" else None
            return redirect(url_for("staff.admin_confirm", next=target))
        return view(*args, **kwargs)

    return staff_page("admin")(fresh)  # type: ignore[return-value]


# --- Confirming with a code ---------------------------------------------------------------


@bp.route("/admin/confirm", methods=["GET", "POST"])
@staff_page("admin")
def admin_confirm() -> ResponseReturnValue:
    """Enter a current two-factor code before the administration pages."""
    form = CodeForm()
    target = _safe_next(request.args.get("next")) or url_for("staff.admin_users")
    if sign_in.second_factor_is_fresh(g.staff_session, now=g.now):
        return redirect(target)
    status = 200
    if form.validate_on_submit():
        user: StaffUser = g.user
        attempt = attempt_of(user.email)
        refused = refuse_if_throttled(attempt, user.email, "code")
        if refused:
            form.code.errors.append(refused)
            return render_template("staff/admin/confirm.html", form=form), 429
        if two_factor.check_code(
            db.session,
            now=g.now,
            vault=current_app.extensions["vault"],
            user=user,
            code=form.code.data,
        ):
            sign_in.confirm_second_factor(db.session, now=g.now, row=g.staff_session)
            db.session.commit()
            _settle(attempt)
            return redirect(target)
        count_failure(attempt, user.email, "code")
        form.code.errors.append(
            _("The code is not right. Enter the 6-digit code your app shows now.")
        )
    elif form.is_submitted():
        status = 400
    return render_template("staff/admin/confirm.html", form=form), status


# --- Staff accounts -------------------------------------------------------------------------


class CheckboxesField(SelectMultipleField):  # type: ignore[misc]
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


def _language_choices() -> list[tuple[str, str]]:
    return list(LANGUAGE_NAMES)


class AccountForm(FlaskForm):  # type: ignore[misc]
    display_name = StringField(_l("Name"), validators=[Optional(), Length(max=200)])
    role = SelectField(_l("Role"), choices=[])
    sites = CheckboxesField(_l("Sites"), coerce=int, choices=[], validate_choice=False)
    all_sites = BooleanField(_l("All sites (not for research nurses)"))
    language = SelectField(_l("Language of the staff pages"), choices=[])

    def fill_choices(self) -> None:
        self.role.choices = [(role, str(label)) for role, label in ROLE_LABELS.items()]
        self.sites.choices = [
            (site.id, f"{site.code} – {site.name}")
            for site in db.session.scalars(select(Site).order_by(Site.code))
        ]
        self.language.choices = _language_choices()


class NewAccountForm(AccountForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254)])


def _admin_error(form: FlaskForm, error: AdminError) -> None:
    field = getattr(form, error.field, None)
    message = _(error.message, **error.params)
    if field is None:
        field = form.role
    field.errors = [*field.errors, message]


def _render_account(user: StaffUser, form: AccountForm, status: int = 200) -> ResponseReturnValue:
    return (
        render_template(
            "staff/admin/account.html",
            account=user,
            form=form,
            role_labels=ROLE_LABELS,
            two_factor_on=two_factor.is_enrolled(user),
            is_self=user.id == g.user.id,
        ),
        status,
    )


def _link_page(user: StaffUser, token: str, *, new: bool) -> str:
    base = current_app.config["PRO_SETTINGS"].public_base_url
    link = base + url_for("staff.set_password", token=token)
    return render_template(
        "staff/admin/link.html",
        account=user,
        link=link,
        new=new,
        valid_hours=int(password_links.LINK_VALID.total_seconds() // 3600),
    )


@bp.get("/admin")
@admin_page
def admin_index() -> ResponseReturnValue:
    return redirect(url_for("staff.admin_users"))


@bp.get("/admin/users")
@admin_page
def admin_users() -> ResponseReturnValue:
    return render_template(
        "staff/admin/accounts.html",
        accounts=administration.list_accounts(db.session),
        role_labels=ROLE_LABELS,
    )


@bp.route("/admin/users/new", methods=["GET", "POST"])
@admin_page
def admin_new_user() -> ResponseReturnValue:
    form = NewAccountForm()
    form.fill_choices()
    if not form.is_submitted():
        form.language.data = "sv"
        form.role.data = "nurse"
        return render_template("staff/admin/new_account.html", form=form)
    if form.validate():
        try:
            user = administration.create_account(
                db.session,
                now=g.now,
                by=g.user,
                email=form.email.data,
                display_name=form.display_name.data or "",
                role=form.role.data,
                site_ids=form.sites.data or [],
                all_sites=bool(form.all_sites.data),
                language=form.language.data,
            )
        except AdminError as error:
            db.session.rollback()
            _admin_error(form, error)
        else:
            token = password_links.issue_link(
                db.session, now=g.now, actor=Actor.staff(g.user.id), user=user
            )
            db.session.commit()
            return _link_page(user, token, new=True)
    return render_template("staff/admin/new_account.html", form=form), 400


def _account_or_404(user_id: int) -> StaffUser:
    user = administration.get_account(db.session, user_id)
    if user is None:
        abort(404)
    return user


@bp.route("/admin/users/<id:user_id>", methods=["GET", "POST"])
@admin_page
def admin_user(user_id: int) -> ResponseReturnValue:
    user = _account_or_404(user_id)
    form = AccountForm(obj=None if request.method == "POST" else user)
    form.fill_choices()
    if request.method == "GET":
        form.sites.data = sorted(user.site_ids)
        return _render_account(user, form)
    if not form.validate():
        return _render_account(user, form, 400)
    try:
        changed = administration.update_account(
            db.session,
            now=g.now,
            by=g.user,
            user=user,
            display_name=form.display_name.data or "",
            role=form.role.data,
            site_ids=form.sites.data or [],
            all_sites=bool(form.all_sites.data),
            language=form.language.data,
        )
    except AdminError as error:
        db.session.rollback()
        _admin_error(form, error)
        return _render_account(db.session.merge(user), form, 400)
    db.session.commit()
    flash(_("Saved.") if changed else _("Nothing was changed."), "info")
    return redirect(url_for("staff.admin_user", user_id=user.id))


def _action(user_id: int, act: Callable[[StaffUser], str]) -> ResponseReturnValue:
    """A button on an account's page: do it, or show why not on the page."""
    user = _account_or_404(user_id)
    if not CodeForm().is_submitted() or not _csrf_ok():
        abort(400)
    try:
        message = act(user)
    except AdminError as error:
        db.session.rollback()
        flash(_(error.message, **error.params), "error")
        return redirect(url_for("staff.admin_user", user_id=user.id))
    db.session.commit()
    flash(message, "info")
    return redirect(url_for("staff.admin_user", user_id=user.id))


def _csrf_ok() -> bool:
    return bool(FlaskForm().validate_on_submit())


@bp.post("/admin/users/<id:user_id>/deactivate")
@admin_page
def admin_deactivate(user_id: int) -> ResponseReturnValue:
    def act(user: StaffUser) -> str:
        ended = administration.set_active(db.session, now=g.now, by=g.user, user=user, active=False)
        return _("%(email)s is deactivated; %(num)d session(s) ended.", email=user.email, num=ended)

    return _action(user_id, act)


@bp.post("/admin/users/<id:user_id>/reactivate")
@admin_page
def admin_reactivate(user_id: int) -> ResponseReturnValue:
    def act(user: StaffUser) -> str:
        administration.set_active(db.session, now=g.now, by=g.user, user=user, active=True)
        return _("%(email)s is active again.", email=user.email)

    return _action(user_id, act)


@bp.post("/admin/users/<id:user_id>/reset-two-factor")
@admin_page
def admin_reset_two_factor(user_id: int) -> ResponseReturnValue:
    def act(user: StaffUser) -> str:
        ended = administration.reset_two_factor(db.session, now=g.now, by=g.user, user=user)
        return _(
            "Two-factor sign-in is off for %(email)s; %(num)d session(s) ended.",
            email=user.email,
            num=ended,
        )

    return _action(user_id, act)


@bp.post("/admin/users/<id:user_id>/password-link")
@admin_page
def admin_password_link(user_id: int) -> ResponseReturnValue:
    user = _account_or_404(user_id)
    if not _csrf_ok():
        abort(400)
    if not user.is_active:
        flash(_("Reactivate the account first."), "error")
        return redirect(url_for("staff.admin_user", user_id=user.id))
    token = password_links.issue_link(
        db.session, now=g.now, actor=Actor.staff(g.user.id), user=user
    )
    db.session.commit()
    return _link_page(user, token, new=False)


# --- Sites ----------------------------------------------------------------------------------


class SiteForm(FlaskForm):  # type: ignore[misc]
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
        self.default_language.choices = _language_choices()


class NewSiteForm(SiteForm):
    code = StringField(_l("Code (e.g. SE-UPP)"), validators=[DataRequired(), Length(max=32)])


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
    field = getattr(form, error.field)
    field.errors = [*field.errors, str(SITE_ERRORS[error.field])]


def _checked(form: SiteForm) -> Any:
    return check_site_fields(
        name=form.name.data,
        country=form.country.data.strip(),
        time_zone=form.time_zone.data.strip(),
        default_language=form.default_language.data,
        study_id_pattern=form.study_id_pattern.data,
        sending_start=form.sending_start.data.strip(),
        sending_end=form.sending_end.data.strip(),
        sms_sender=form.sms_sender.data,
    )


@bp.get("/admin/sites")
@admin_page
def admin_sites() -> ResponseReturnValue:
    sites = list(db.session.scalars(select(Site).order_by(Site.code)))
    return render_template("staff/admin/sites.html", sites=sites)


@bp.route("/admin/sites/new", methods=["GET", "POST"])
@admin_page
def admin_new_site() -> ResponseReturnValue:
    form = NewSiteForm()
    form.fill_choices()
    if not form.is_submitted():
        form.sending_start.data, form.sending_end.data = "09:00", "20:00"
        form.default_language.data = "sv"
        return render_template("staff/admin/site.html", form=form, site=None)
    if form.validate():
        try:
            code = check_site_code(db.session, form.code.data)
            checked = _checked(form)
        except StaffDataError as error:
            _site_error(form, error)
        else:
            site = create_site(
                db.session,
                now=g.now,
                actor=Actor.staff(g.user.id),
                code=code,
                **checked.__dict__,
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
        try:
            checked = _checked(form)
        except StaffDataError as error:
            _site_error(form, error)
        else:
            changed = update_site(
                db.session, now=g.now, actor=Actor.staff(g.user.id), site=site, changes=checked
            )
            db.session.commit()
            flash(_("Saved.") if changed else _("Nothing was changed."), "info")
            return redirect(url_for("staff.admin_site", site_id=site.id))
    return render_template("staff/admin/site.html", form=form, site=site), 400
