"""Helpers for the patient page tests: the link of a test assessment, CSRF, stored rows."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select

from pro_service.extensions import db
from pro_service.models import Response

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass(frozen=True)
class Link:
    token: str
    assessment_id: int
    patient_id: int

    @property
    def url(self) -> str:
        return f"/q/{self.token}"

    def screen(self, number: int | str) -> str:
        return f"/q/{self.token}/s/{number}"


def csrf_of(html: str) -> str:
    match = CSRF_FIELD.search(html)
    assert match, "the page has no CSRF token"
    return match.group(1)


def load(app, model: type, ident: int):  # type: ignore[no-untyped-def]
    """A fresh copy of one row, read in its own app context."""
    with app.app_context():
        obj = db.session.get(model, ident)
        db.session.expunge_all()
        return obj


def stored_answers(app, assessment_id: int) -> dict[int, int]:  # type: ignore[no-untyped-def]
    with app.app_context():
        rows = db.session.execute(
            select(Response.item_number, Response.code).where(
                Response.assessment_id == assessment_id
            )
        )
        return {item: code for item, code in rows}
