"""Per-request set-up of the patient blueprint: language, link lookup, failed-lookup limit, CSRF."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import current_app, g, request, session, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import Connection
from werkzeug.wrappers import Response

from ... import LANGUAGES, rate_limit
from ...answering.questionnaire import count_failed_lookup, open_link
from ...clock import utcnow
from ...extensions import csrf, db
from ..i18n import LANGUAGE_NAMES, request_language
from . import bp
from .errors import TooManyRequests

#: Failed link look-ups allowed per client address per minute (``PRO_LINK_RATE_LIMIT``).
WINDOW = 60
#: Requests whose views only read: every GET of the patient pages.
READ_ONLY_METHODS = frozenset({"GET", "HEAD"})


@bp.before_request
def _prepare() -> ResponseReturnValue | None:
    g.now = utcnow()
    chosen = request.args.get("lang")
    if chosen in LANGUAGES:
        session["language"] = chosen
        g.explicit_language = chosen

    token = (request.view_args or {}).get("token", "")
    lookup = _lookup_connection()
    g.link = open_link(lookup, token=token)
    if g.link is None:
        # Only a token that names no link counts: a patient's own pages are never limited,
        # and a limited request is one whose answers had nowhere to go anyway.
        settings = current_app.config["PRO_SETTINGS"]
        limit = rate_limit.Limit(requests=settings.link_rate_limit, window_seconds=WINDOW)
        bucket = rate_limit.bucket_for(
            "patient-link", request.remote_addr or "", settings.secret_key
        )
        with _counting_connection(lookup) as connection:
            decision = count_failed_lookup(connection, now=g.now, bucket=bucket, limit=limit)
        if not decision.allowed:
            raise TooManyRequests(retry_after=decision.retry_after_seconds)
    else:
        g.patient_language = g.link.patient_language

    if request.method == "POST":
        csrf.protect()
    return None


def _lookup_connection() -> Connection:
    """The request's own connection (``db.connection()``), to find the link on: in autocommit
    for a page that only reads (no transaction to begin and roll back), else in the transaction
    that the page's write then joins, through the connection or a session working on it (one
    connection for the whole request)."""
    return db.connection(autocommit=request.method in READ_ONLY_METHODS)


@contextmanager
def _counting_connection(lookup: Connection) -> Iterator[Connection]:
    """An autocommit connection to count a failed look-up on (the count commits by itself):
    the look-up's own for a page that only reads, else one of its own, so that the count holds
    when the request's transaction is rolled back."""
    if request.method in READ_ONLY_METHODS:
        yield lookup
        return
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        yield connection


@bp.after_request
def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def page_url() -> str:
    """This page's own address, without its query, built once per request: the language links
    and a screen's form both lead to it. After a POST, the link's first page instead (a POST's
    address is not a page to switch language on)."""
    base: str | None = g.get("page_url")
    if base is None:
        view_args = dict(request.view_args or {})
        if request.method == "GET" and request.endpoint and request.url_rule is not None:
            base = url_for(request.endpoint, **view_args)
        else:
            base = url_for("patient.entry", token=view_args.get("token", ""))
        g.page_url = base
    return base


def language_url(code: str) -> str:
    """This page in another language; after a POST, the start of the questionnaire."""
    return f"{page_url()}?lang={code}"  # the codes are plain letters (LANGUAGE_NAMES)


@bp.context_processor
def _template_globals() -> dict[str, Any]:
    # The language links are made here, once per page, rather than by a function the template
    # calls for each language.
    return {
        "current_language": request_language(),
        "language_links": [(code, name, language_url(code)) for code, name in LANGUAGE_NAMES],
    }
