"""Kind error pages of the patient blueprint, always in the patient's language, never a 500 page.

Status codes: 200 with "your answers were received" for a link whose answers were sent, 404 for
every other link that cannot be used (no hint whether it exists), 400 for a form
that cannot be saved (nothing from it is saved), 413 for an oversized body, 429 over the rate
limit, 500 for an unexpected fault (earlier answers stay saved).
"""

from __future__ import annotations

import contextlib

from flask import g, render_template
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge

from ...extensions import db
from . import bp


class LinkUnavailable(HTTPException):
    """The link is unknown, expired, cancelled or used up: all look the same to the visitor."""

    code = 404


class AlreadyAnswered(Exception):
    """The link's answers were sent: the page says they were received (200, nothing shown)."""


class BadForm(HTTPException):
    """A request that cannot be honoured; ``message`` says why in the patient's language."""

    code = 400

    def __init__(self, message: str, back_url: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.back_url = back_url


class TooManyRequests(HTTPException):
    code = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__()
        self.retry_after = retry_after


def _rollback() -> None:
    with contextlib.suppress(Exception):  # the page must still render
        db.rollback()


@bp.errorhandler(LinkUnavailable)
def _link_unavailable(_error: LinkUnavailable) -> ResponseReturnValue:
    _rollback()
    return render_template("patient/unavailable.html"), 404


@bp.errorhandler(AlreadyAnswered)
def _already_answered(_error: AlreadyAnswered) -> ResponseReturnValue:
    _rollback()
    return render_template("patient/received.html"), 200


@bp.errorhandler(BadForm)
def _bad_form(error: BadForm) -> ResponseReturnValue:
    _rollback()
    return render_template(
        "patient/problem.html",
        title=_("Your answers on this page were not saved"),
        message=error.message,
        back_url=error.back_url,
    ), 400


@bp.errorhandler(CSRFError)
def _csrf_failed(_error: CSRFError) -> ResponseReturnValue:
    _rollback()
    return render_template(
        "patient/problem.html",
        title=_("Your answers on this page were not saved"),
        message=_(
            "For your safety this page has expired. Open the link from your text message "
            "again and answer the questions on this page once more."
        ),
        back_url=None,
    ), 400


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_error: RequestEntityTooLarge) -> ResponseReturnValue:
    _rollback()
    return render_template(
        "patient/problem.html",
        title=_("Your answers on this page were not saved"),
        message=_("The page sent more data than a questionnaire page can hold. Please try again."),
        back_url=None,
    ), 413


@bp.errorhandler(TooManyRequests)
def _too_many(error: TooManyRequests) -> ResponseReturnValue:
    _rollback()
    body = render_template("patient/busy.html")
    return body, 429, {"Retry-After": str(error.retry_after)}


@bp.errorhandler(InternalServerError)
def _server_error(_error: InternalServerError) -> ResponseReturnValue:
    _rollback()
    g.setdefault("link", None)
    return render_template(
        "patient/problem.html",
        title=_("Something went wrong"),
        message=_(
            "Something went wrong on our side. The answers you saved earlier are kept. "
            "Please try again in a little while."
        ),
        back_url=None,
    ), 500
