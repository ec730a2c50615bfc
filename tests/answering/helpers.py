"""Helpers for the patient page tests: the link of a test assessment and its stored answers."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from pro_service.extensions import db
from pro_service.models import Response


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


def stored_answers(app, assessment_id: int) -> dict[int, int]:  # type: ignore[no-untyped-def]
    with app.app_context():
        rows = db.session.execute(
            select(Response.item_number, Response.code).where(
                Response.assessment_id == assessment_id
            )
        )
        return {item: code for item, code in rows}
