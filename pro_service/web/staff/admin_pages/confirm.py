"""The fresh two-factor check of the administration pages: :func:`admin_page`, and
``/staff/admin/confirm`` which asks for a code when the last one is older than 15 minutes."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from ....extensions import db
from ....models import StaffUser
from ....staff import sign_in, two_factor
from .. import bp
from ..auth import CodeForm, _safe_next, attempt_of, count_failure, refuse_if_throttled, staff_page
from ..auth import settle_success as _settle

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
