"""Staff accounts (``/staff/admin/users``): list, create, edit, deactivate and reactivate, reset
two-factor sign-in, set-password links. A link is shown once, in the answer to the POST that
made it, and never again. The rules live in :mod:`pro_service.staff.administration`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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

from ....audit import Actor
from ....extensions import db
from ....models import Site, StaffUser
from ....staff import administration, password_links, two_factor
from ....staff.administration import AdminError
from ...i18n import LANGUAGE_NAMES
from .. import bp
from ..account import ROLE_LABELS
from .confirm import admin_page

# --- Staff accounts -------------------------------------------------------------------------


class CheckboxesField(SelectMultipleField):  # type: ignore[misc]
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


def language_choices() -> list[tuple[str, str]]:
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
        self.language.choices = language_choices()


class NewAccountForm(AccountForm):
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254)])


def _account_fields(form: AccountForm) -> dict[str, Any]:
    """What the form says of an account, as the administration services take it."""
    return {
        "display_name": form.display_name.data or "",
        "role": form.role.data,
        "site_ids": form.sites.data or [],
        "all_sites": bool(form.all_sites.data),
        "language": form.language.data,
    }


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
            state=administration.account_state(user),
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
    accounts = administration.list_accounts(db.session)
    return render_template(
        "staff/admin/accounts.html",
        accounts=accounts,
        states={a.id: administration.account_state(a) for a in accounts},
        enrolled={a.id for a in accounts if two_factor.is_enrolled(a)},
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
                **_account_fields(form),
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
            **_account_fields(form),
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
    user = _account_or_404(user_id)  # CSRFProtect has checked the form's token
    try:
        message = act(user)
    except AdminError as error:
        db.session.rollback()
        flash(_(error.message, **error.params), "error")
        return redirect(url_for("staff.admin_user", user_id=user.id))
    db.session.commit()
    flash(message, "info")
    return redirect(url_for("staff.admin_user", user_id=user.id))


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
    if not user.is_active:
        flash(_("Reactivate the account first."), "error")
        return redirect(url_for("staff.admin_user", user_id=user.id))
    token = password_links.issue_link(
        db.session, now=g.now, actor=Actor.staff(g.user.id), user=user
    )
    db.session.commit()
    return _link_page(user, token, new=False)
