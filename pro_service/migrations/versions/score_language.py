"""Scores keep the language of the answers they were computed from

Exports read it with the score instead of grouping every stored answer again.

Revision ID: score_language
Revises: staff
Create Date: 2026-11-29 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "score_language"
down_revision = "staff"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scores", schema=None) as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(length=2), nullable=True))
    op.execute(
        "UPDATE scores SET language = ("
        " SELECT min(responses.language) FROM responses"
        " WHERE responses.assessment_id = scores.assessment_id"
        " AND responses.instrument_id = scores.instrument_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("scores", schema=None) as batch_op:
        batch_op.drop_column("language")
