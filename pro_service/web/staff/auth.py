"""Sign-in state of the staff pages: the session cookie, the idle timeout, roles, sign-in/out.

Sign-in: password (``/staff/login``), then, for an account with two-factor sign-in, a code
(``/staff/login/code``); an admin without it enrols first (``/staff/account/two-factor``). Only
then is the session ``verified``. Failed passwords and codes are throttled in the database.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import abort, current_app, flash, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_wtf import FlaskForm
from sqlalchemy import Connection
from werkzeug.exceptions import NotFound
from werkzeug.wrappers import Response
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from ... import LANGUAGES
from ...clock import utcnow
from ...extensions import db
from ...models import Role, StaffSession, StaffUser
from ...staff import access, sign_in, two_factor
from ..i18n import LANGUAGE_NAMES, request_language
from . import bp

F = TypeVar("F", bound=Callable[..., ResponseReturnValue])
SESSION_KEY = "staff_session"


@bp.before_request
def _load_user() -> None:
    g.now = utcnow()
    chosen = request.args.get("lang")
    if chosen in LANGUAGES:
        session["language"] = chosen
        g.explicit_language = chosen
    settings = current_app.config["PRO_SETTINGS"]
    row = sign_in.find_session(
        db.session,
        now=g.now,
        token=session.get(SESSION_KEY),
        idle=timedelta(minutes=settings.staff_idle_minutes),
    )
    if row is None and session.get(SESSION_KEY):
        session.pop(SESSION_KEY, None)
        g.session_expired = True
        db.session.commit()  # an idle session is ended for good
    elif row is not None and row.last_seen_at == g.now:
        db.session.commit()  # activity noted (at most once a minute), read-only pages included
    g.staff_session = row
    g.user = row.user if row is not None and row.verified else None
    if row is not None:
        # From the checked password on, the pages speak the account's language: the
        # second-factor steps too, so that their messages match the pages after them.
        g.staff_language = row.user.language


@bp.errorhandler(access.NotVisible)
def _not_visible(_exc: access.NotVisible) -> Response:
    """Another site's object (or another role's page): plain 404, whatever view asked."""
    return NotFound().get_response()


@bp.after_request
def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def current_user() -> StaffUser:
    user: StaffUser | None = g.get("user")
    if user is None:
        abort(401)
    return user


def pending_step_url(row: StaffSession) -> str:
    """Where a session whose password is checked goes next: the code, or enrolment."""
    if two_factor.is_enrolled(row.user):
        return url_for("staff.login_code")
    return url_for("staff.two_factor")


def staff_page(*roles: str) -> Callable[[F], F]:
    """Require a verified sign-in, and (if given) one of ``roles``; otherwise 404 for the role.

    Views of other roles answer 404 rather than 403, like another site's objects. A session
    still waiting for its second factor goes to that step; an admin without two-factor sign-in
    (e.g. a user made admin while signed in) goes to enrolment before any page.
    """

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> ResponseReturnValue:
            if g.get("user") is None:
                if g.get("staff_session") is not None:
                    return redirect(pending_step_url(g.staff_session))
                if g.get("session_expired"):
                    flash(_("You were signed out after a period of inactivity."), "info")
                return redirect(url_for("staff.login", next=request.full_path.rstrip("?")))
            if two_factor.is_required(g.user) and not two_factor.is_enrolled(g.user):
                return redirect(url_for("staff.two_factor"))
            if roles and g.user.role not in roles:
                abort(404)
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


#: The staff navigation: (endpoint, label, roles). An entry shows once its view exists.
NAVIGATION = (
    ("staff.board", _l("Completion board"), access.PATIENT_VIEWER_ROLES),
    ("staff.register_patient", _l("Register a patient"), access.PATIENT_EDITOR_ROLES),
    ("staff.exports", _l("Exports"), access.EXPORT_ROLES),
    ("staff.compliance", _l("Compliance"), frozenset(r.value for r in Role)),
    ("staff.admin_users", _l("Staff"), access.ADMIN_ROLES),
    ("staff.admin_sites", _l("Sites"), access.ADMIN_ROLES),
    ("staff.audit_trail", _l("Audit trail"), access.ADMIN_ROLES),
    ("staff.account", _l("Your account"), frozenset(r.value for r in Role)),
)


def navigation(user: StaffUser | None) -> list[tuple[str, str]]:
    """The (url, label) pairs of the navigation for ``user``."""
    if user is None:
        return []
    views = current_app.view_functions
    return [
        (url_for(endpoint), str(label))
        for endpoint, label, roles in NAVIGATION
        if endpoint in views and user.role in roles
    ]


def home_url(user: StaffUser) -> str:
    """The first page of ``user``'s role: the board, else exports, else the account page."""
    views = current_app.view_functions
    for endpoint, _label, roles in NAVIGATION:
        if endpoint in views and user.role in roles:
            return url_for(endpoint)
    return url_for("staff.index")


def _safe_next(target: str | None) -> str | None:
    """Only same-site paths under /staff are followed after sign-in."""
    if target and target.startswith("/staff/") and not target.startswith("//"):
        return target
    return None


class LoginForm(FlaskForm):  # type: ignore[misc]
    email = EmailField(_l("Email"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=1024)])


class CodeForm(FlaskForm):  # type: ignore[misc]
    code = StringField(
        _l("Code from your authenticator app"),
        validators=[DataRequired(), Length(max=20)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"},
    )


@contextmanager
def counters() -> Iterator[Connection]:
    """A connection of its own in autocommit mode for the throttling counters."""
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        yield connection


def attempt_of(email: str) -> sign_in.Attempt:
    return sign_in.Attempt.of(
        email=email,
        address=request.remote_addr,
        secret=current_app.config["PRO_SETTINGS"].secret_key,
    )


def throttled_message(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return ngettext(
        "Too many failed attempts. Please wait %(num)d minute before you try again.",
        "Too many failed attempts. Please wait %(num)d minutes before you try again.",
        minutes,
    )


def refuse_if_throttled(attempt: sign_in.Attempt, email: str, step: str) -> str | None:
    """Reserve the attempt: the message if it is refused (audited and committed), or None to go
    on (after the slow-down of an address with many failures)."""
    with counters() as connection:
        reservation = sign_in.reserve(connection, now=g.now, attempt=attempt)
    wait = reservation.wait_seconds
    if wait is None:
        if reservation.delay_seconds:
            time.sleep(reservation.delay_seconds)
        return None
    user_id = sign_in.user_id_for(db.session, email)
    sign_in.record_throttled(db.session, now=g.now, attempt=attempt, user_id=user_id, step=step)
    db.session.commit()
    return throttled_message(wait)


def count_failure(attempt: sign_in.Attempt, email: str, step: str) -> None:
    """Audit a failed attempt, commit, then count it for the address (after the commit: no lock
    is held)."""
    user_id = sign_in.user_id_for(db.session, email)
    sign_in.record_failure(db.session, now=g.now, attempt=attempt, user_id=user_id, step=step)
    db.session.commit()
    with counters() as connection:
        sign_in.count_failure(connection, now=g.now, attempt=attempt)


def settle_success(attempt: sign_in.Attempt) -> None:
    """A reserved attempt was right: its count goes back to the account."""
    with counters() as connection:
        sign_in.settle_success(connection, now=g.now, attempt=attempt)


def finish_sign_in(row: StaffSession, *, second_factor: bool = False) -> Response:
    """The password (and any second factor) checked: mark the session and go on."""
    sign_in.mark_verified(db.session, now=g.now, row=row, second_factor=second_factor)
    db.session.commit()
    with counters() as connection:
        sign_in.forget_failures(connection, attempt=attempt_of(row.user.email))
    target = _safe_next(session.pop("after_sign_in", None))
    return redirect(target or home_url(row.user))


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if g.get("user") is not None:
        return redirect(home_url(g.user))
    form = LoginForm()
    if form.validate_on_submit():
        attempt = attempt_of(form.email.data)
        refused = refuse_if_throttled(attempt, form.email.data, "password")
        if refused:
            form.password.errors.append(refused)
            return render_template("staff/login.html", form=form), 429
        user = sign_in.check_password(
            db.session, now=g.now, email=form.email.data, password=form.password.data
        )
        if user is None:
            count_failure(attempt, form.email.data, "password")
            form.password.errors.append(_("The email or the password is not right."))
            return render_template("staff/login.html", form=form), 200
        settle_success(attempt)  # the password was right: only failures use up the limit
        if g.get("staff_session") is not None:
            sign_in.end_session(db.session, now=g.now, row=g.staff_session, why="new sign-in")
        new = sign_in.start_session(db.session, now=g.now, user=user, verified=False)
        session.clear()  # a fresh session on sign-in (no fixation)
        session[SESSION_KEY] = new.token
        session["after_sign_in"] = request.args.get("next")
        if "language" in request.args:
            session["language"] = request.args["language"]
        if two_factor.is_enrolled(user) or two_factor.is_required(user):
            db.session.commit()  # the password is right; the session waits for the code
            return redirect(pending_step_url(new.row))
        return finish_sign_in(new.row)
    return render_template("staff/login.html", form=form)


@bp.route("/login/code", methods=["GET", "POST"])
def login_code() -> ResponseReturnValue:
    """The second step: a code from the authenticator app, each code usable once."""
    row: StaffSession | None = g.get("staff_session")
    if row is None:
        return redirect(url_for("staff.login"))
    if row.verified:
        return redirect(home_url(row.user))
    if not two_factor.is_enrolled(row.user):
        return redirect(pending_step_url(row))
    form = CodeForm()
    if form.validate_on_submit():
        user = row.user
        attempt = attempt_of(user.email)
        refused = refuse_if_throttled(attempt, user.email, "code")
        if refused:
            form.code.errors.append(refused)
            return render_template("staff/login_code.html", form=form), 429
        vault = current_app.extensions["vault"]
        if two_factor.check_code(
            db.session, now=g.now, vault=vault, user=user, code=form.code.data
        ):
            return finish_sign_in(row, second_factor=True)
        count_failure(attempt, user.email, "code")
        form.code.errors.append(
            _("The code is not right. Enter the 6-digit code your app shows now.")
        )
        return render_template("staff/login_code.html", form=form), 200
    return render_template("staff/login_code.html", form=form)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """Sign out, also from a sign-in still waiting for its second factor."""
    row: StaffSession | None = g.get("staff_session")
    if row is None:
        return redirect(url_for("staff.login"))
    sign_in.end_session(db.session, now=g.now, row=row, why="signed out")
    db.session.commit()
    session.pop(SESSION_KEY, None)
    flash(_("You are signed out."), "info")
    return redirect(url_for("staff.login"))


def language_url(code: str) -> str:
    """This page in another language (a GET of the same URL; after a POST, the home page)."""
    if request.method == "GET" and request.endpoint and request.url_rule is not None:
        args = {**request.args.to_dict(), **(request.view_args or {}), "lang": code}
        return url_for(request.endpoint, **args)
    return url_for("staff.index", lang=code)


def staff_url(endpoint: str, **values: Any) -> str | None:
    """``url_for`` for a staff page, or None while that page does not exist (links hide)."""
    if endpoint not in current_app.view_functions:
        return None
    return url_for(endpoint, **values)


@bp.context_processor
def _staff_globals() -> dict[str, Any]:
    return {
        "staff_user": g.get("user"),
        "staff_navigation": navigation(g.get("user")),
        "current_language": request_language(),
        "language_names": LANGUAGE_NAMES,
        "staff_language_url": language_url,
        "staff_url": staff_url,
    }


@bp.get("/")
def index() -> ResponseReturnValue:
    """The staff home: each role's first page."""
    if g.get("user") is None:
        return redirect(url_for("staff.login"))
    target = home_url(g.user)
    if target != url_for("staff.index"):
        return redirect(target)
    return render_template("staff/home.html")
