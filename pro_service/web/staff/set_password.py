"""``/staff/set-password/<token>``: the one-time link an admin hands over, for a new account's
first password or a forgotten one. No sign-in needed; the link works once, for 72 hours."""

from __future__ import annotations

from flask import flash, g, redirect, render_template, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField
from wtforms.validators import DataRequired, Length

from ...extensions import db
from ...staff import password_links
from ...staff.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from . import bp
from .account import POLICY_REASONS, password_policy_message
from .auth import SESSION_KEY


class SetPasswordForm(FlaskForm):  # type: ignore[misc]
    password = PasswordField(
        _l("New password"),
        validators=[DataRequired(), Length(max=1024)],
        render_kw={"autocomplete": "new-password"},
    )
    repeat_password = PasswordField(
        _l("New password again"),
        validators=[DataRequired(), Length(max=1024)],
        render_kw={"autocomplete": "new-password"},
    )


def _unusable(reason: str) -> str:
    if reason == "expired":
        return _("This link has expired. Ask an administrator for a new one.")
    if reason == "used":
        return _(
            "This link has already been used, or a newer link replaced it. Ask an administrator "
            "for a new one if you still need to set your password."
        )
    if reason == "inactive":
        return _("This account is deactivated. Ask an administrator.")
    return _("This link is not valid. Check that you copied all of it.")


@bp.route("/set-password/<token>", methods=["GET", "POST"])
def set_password(token: str) -> ResponseReturnValue:
    try:
        link = password_links.find_link(db.session, now=g.now, token=token)
    except password_links.PasswordLinkError as error:
        return render_template("staff/set_password.html", problem=_unusable(error.reason)), 410
    form = SetPasswordForm()
    status = 200
    if form.validate_on_submit():
        try:
            user = password_links.set_password(
                db.session,
                now=g.now,
                token=token,
                password=form.password.data,
                repeated=form.repeat_password.data,
            )
        except password_links.PasswordLinkError as error:
            db.session.rollback()
            if error.reason in POLICY_REASONS:
                form.password.errors.append(password_policy_message(error.reason))
            elif error.reason == "mismatch":
                form.repeat_password.errors.append(_("The two new passwords are not the same."))
            else:
                message = _unusable(error.reason)
                return render_template("staff/set_password.html", problem=message), 410
            status = 400
        else:
            db.session.commit()
            session.pop(SESSION_KEY, None)
            session["language"] = user.language
            flash(_("Your password is set. Sign in with it now."), "info")
            return redirect(url_for("staff.login"))
    elif form.is_submitted():
        status = 400
    return (
        render_template(
            "staff/set_password.html",
            form=form,
            account=link.user,
            min_length=MIN_PASSWORD_LENGTH,
            max_length=MAX_PASSWORD_LENGTH,
        ),
        status,
    )
