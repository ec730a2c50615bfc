"""Helpers for tests that use the pages: CSRF tokens, reading the database beside requests, and
signing staff in through the forms.

Do not use the ``session`` fixture in tests that make requests: it keeps an application context
open, which every request would then share (and with it ``g``: the CSRF token and the locale of
an earlier request). Read the database with :func:`read` (its own application context) instead.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TypeVar

import pyotp

from pro_service.extensions import db
from pro_service.models import StaffUser

from builders import PASSWORD

T = TypeVar("T")
CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def totp_code(secret: str, step: int) -> str:
    """The code of one 30-second time step."""
    return pyotp.TOTP(secret).generate_otp(step)


def csrf_of(html: str) -> str:
    match = CSRF_FIELD.search(html)
    assert match, "the page has no CSRF token"
    return match.group(1)


def read(app, query: Callable[..., T]) -> T:  # type: ignore[no-untyped-def]
    """Run ``query(session)`` in a fresh application context and return its result."""
    with app.app_context():
        try:
            return query(db.session)
        finally:
            db.session.rollback()


def sign_in_with_password(client, email: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    """Post the sign-in form (read in English, so tests can name the messages)."""
    page = client.get("/staff/login?lang=en")
    return client.post(
        "/staff/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(page.text)},
    )


def enter_code(app, client, user_id: int, secret: str):  # type: ignore[no-untyped-def]
    """Post the sign-in code step with a code the server has not seen yet.

    A time step is accepted once, and within one step of now: this takes the current step, else
    the next one (never the previous one, which a step boundary could put out of reach). When
    both are used (a third sign-in within 30 s), it marks the steps before now as the last used
    instead of moving the clock: a cookie signed in the future is refused back in the present.
    """
    now_step = int(time.time()) // 30
    last = read(app, lambda s: s.get(StaffUser, user_id).totp_last_step)
    if last is not None and last > now_step:
        with app.app_context():
            db.session.get(StaffUser, user_id).totp_last_step = now_step - 1
            db.session.commit()
        last = now_step - 1
    step = now_step if last is None or last < now_step else now_step + 1
    page = client.get("/staff/login/code?lang=en")
    return client.post(
        "/staff/login/code",
        data={"code": totp_code(secret, step), "csrf_token": csrf_of(page.text)},
    )


def load(app, model: type, ident: int):  # type: ignore[no-untyped-def]
    """A fresh copy of one row, read in its own app context."""
    with app.app_context():
        obj = db.session.get(model, ident)
        db.session.expunge_all()
        return obj
