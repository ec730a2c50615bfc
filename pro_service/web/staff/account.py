"""Your account (``/staff/account``): details, password change, two-factor sign-in."""

from __future__ import annotations

from flask import current_app, flash, g, redirect, render_template, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField
from wtforms.validators import DataRequired, Length

from ...extensions import db
from ...models import Role, StaffSession, StaffUser
from ...staff import sign_in, two_factor
from ...staff.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from . import bp
from .auth import (
    CodeForm,
    attempt_of,
    count_failure,
    finish_sign_in,
    refuse_if_throttled,
    settle_success,
    staff_page,
)

ROLE_LABELS = {
    Role.NURSE.value: _l("Research nurse"),
    Role.INVESTIGATOR.value: _l("Investigator"),
    Role.DATA_MANAGER.value: _l("Data manager"),
    Role.ADMIN.value: _l("Administrator"),
}
#: The Flask-session key of the secret shown during enrolment (encrypted with the vault).
PENDING_SECRET_KEY = "totp_pending"  # noqa: S105  (a key name, not a secret)


class PasswordForm(FlaskForm):  # type: ignore[misc]
    current_password = PasswordField(
        _l("Current password"),
        validators=[DataRequired(), Length(max=1024)],
        render_kw={"autocomplete": "current-password"},
    )
    new_password = PasswordField(
        _l("New password"),
        validators=[DataRequired(), Length(max=1024)],
        render_kw={"autocomplete": "new-password"},
    )
    repeat_password = PasswordField(
        _l("New password again"),
        validators=[DataRequired(), Length(max=1024)],
        render_kw={"autocomplete": "new-password"},
    )


#: Why :mod:`pro_service.staff.passwords` refuses a new password.
POLICY_REASONS = frozenset({"too_short", "too_long", "common", "guessable"})


def password_policy_message(reason: str) -> str:
    """The staff pages' words for a new password that the password rules refuse."""
    if reason == "too_short":
        return _("Choose a password of at least %(num)d characters.", num=MIN_PASSWORD_LENGTH)
    if reason == "too_long":
        return _("Choose a password of at most %(num)d characters.", num=MAX_PASSWORD_LENGTH)
    if reason == "common":
        return _(
            "This password is on the list of common and breached passwords that attackers try "
            "first. Choose another, for example a few unrelated words."
        )
    return _(
        "This password is easy to guess: it is built on common words, names, dates, keyboard "
        "patterns, repeats or your own name. Choose another, for example a few unrelated words."
    )


def _password_error(error: sign_in.PasswordChangeError) -> str:
    if error.reason == "wrong":
        return _("The current password is not right.")
    if error.reason in POLICY_REASONS:
        return password_policy_message(error.reason)
    if error.reason == "mismatch":
        return _("The two new passwords are not the same.")
    return _("The new password must differ from the current one.")


def _code_error(error: two_factor.TwoFactorError) -> str:
    if error.reason == "admin_required":
        return _("Administrators must keep two-factor sign-in.")
    if error.reason == "enrolled":
        return _("Two-factor sign-in is already on.")
    return _("The code is not right. Enter the 6-digit code your app shows now.")


def _render_account(
    password_form: PasswordForm | None = None, disable_form: CodeForm | None = None
) -> str:
    user: StaffUser = g.user
    sites = sorted(m.site.name for m in user.memberships)
    return render_template(
        "staff/account.html",
        user=user,
        role_label=ROLE_LABELS.get(user.role, user.role),
        sites=sites,
        two_factor_on=two_factor.is_enrolled(user),
        two_factor_required=two_factor.is_required(user),
        password_form=password_form or PasswordForm(),
        disable_form=disable_form or CodeForm(),
        min_password_length=MIN_PASSWORD_LENGTH,
    )


@bp.get("/account")
@staff_page()
def account() -> ResponseReturnValue:
    return _render_account()


@bp.post("/account/password")
@staff_page()
def change_password() -> ResponseReturnValue:
    form = PasswordForm()
    if not form.validate_on_submit():
        return _render_account(password_form=form), 400
    user: StaffUser = g.user
    attempt = attempt_of(user.email)
    refused = refuse_if_throttled(attempt, user.email, "current_password")
    if refused:
        form.current_password.errors.append(refused)
        return _render_account(password_form=form), 429
    try:
        ended = sign_in.change_password(
            db.session,
            now=g.now,
            user=user,
            current_password=form.current_password.data,
            new_password=form.new_password.data,
            repeated=form.repeat_password.data,
            keep=g.staff_session,
        )
    except sign_in.PasswordChangeError as error:
        db.session.rollback()
        if error.reason == "wrong":
            count_failure(attempt, user.email, "current_password")
        else:
            # The current password was right; only the new one was refused: that is no
            # failed attempt, and must not lock the account after a few tries.
            settle_success(attempt)
        getattr(form, error.field).errors.append(_password_error(error))
        return _render_account(password_form=form), 400
    db.session.commit()
    settle_success(attempt)
    if ended:
        flash(_("Your password is changed. You were signed out everywhere else."), "info")
    else:
        flash(_("Your password is changed."), "info")
    return redirect(url_for("staff.account"))


@bp.post("/account/two-factor/disable")
@staff_page()
def disable_two_factor() -> ResponseReturnValue:
    form = CodeForm()
    if not form.validate_on_submit():
        return _render_account(disable_form=form), 400
    try:
        two_factor.disable(
            db.session,
            now=g.now,
            vault=current_app.extensions["vault"],
            user=g.user,
            code=form.code.data,
        )
    except two_factor.TwoFactorError as error:
        db.session.rollback()
        form.code.errors.append(_code_error(error))
        return _render_account(disable_form=form), 400
    db.session.commit()
    flash(_("Two-factor sign-in is off."), "info")
    return redirect(url_for("staff.account"))


def _pending_secret() -> str:
    """The secret being enrolled: the same one across reloads of the page, until it is confirmed."""
    vault = current_app.extensions["vault"]
    stored = session.get(PENDING_SECRET_KEY)
    if stored:
        try:
            return str(vault.decrypt(stored.encode()))
        except ValueError:
            pass
    secret = two_factor.new_secret()
    session[PENDING_SECRET_KEY] = vault.encrypt(secret).decode()
    return secret


@bp.route("/account/two-factor", methods=["GET", "POST"], endpoint="two_factor")
def two_factor_enrol() -> ResponseReturnValue:
    """Turn two-factor sign-in on. Also the step an admin without it must take at sign-in."""
    row: StaffSession | None = g.get("staff_session")
    if row is None:
        return redirect(url_for("staff.login", next=url_for("staff.two_factor")))
    user = row.user
    if two_factor.is_enrolled(user):
        if not row.verified:
            return redirect(url_for("staff.login_code"))
        return redirect(url_for("staff.account"))
    if not row.verified and not two_factor.is_required(user):
        return redirect(url_for("staff.login"))  # not a sign-in step for this account
    secret = _pending_secret()
    form = CodeForm()
    status = 200
    if form.validate_on_submit():
        try:
            two_factor.enrol(
                db.session,
                now=g.now,
                vault=current_app.extensions["vault"],
                user=user,
                secret=secret,
                code=form.code.data,
            )
        except two_factor.TwoFactorError as error:
            db.session.rollback()
            form.code.errors.append(_code_error(error))
            status = 400
        else:
            session.pop(PENDING_SECRET_KEY, None)
            flash(_("Two-factor sign-in is on."), "info")
            if not row.verified:
                return finish_sign_in(row, second_factor=True)
            db.session.commit()
            return redirect(url_for("staff.account"))
    elif form.is_submitted():
        status = 400
    return render_template(
        "staff/account_two_factor.html",
        form=form,
        pending=not row.verified,
        secret=two_factor.grouped(secret),
        qr=two_factor.qr_data_uri(two_factor.provisioning_uri(secret, user.email)),
    ), status
