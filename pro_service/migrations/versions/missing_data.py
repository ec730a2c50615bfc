"""Missing data: a missed time point's reason, and how answers were collected (mode, entered by)

Revision ID: missing_data
Revises: inbound_messages
Create Date: 2026-12-04 03:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import pro_service.models

revision = "missing_data"
down_revision = "inbound_messages"
branch_labels = None
depends_on = None


COLUMNS = (
    "missing_reason",
    "missing_reason_text",
    "missing_reason_by",
    "missing_reason_at",
    "mode",
    "entered_by",
)


def upgrade() -> None:
    # Plain ADD/DROP COLUMN (no table rebuild: SQLite refuses to drop the assessments table that
    # answers and scores reference). The mode's allowed values are checked by the service.
    op.add_column("assessments", sa.Column("missing_reason", sa.String(length=40), nullable=True))
    op.add_column("assessments", sa.Column("missing_reason_text", sa.Text(), nullable=True))
    op.add_column(
        "assessments", sa.Column("missing_reason_by", sa.String(length=80), nullable=True)
    )
    op.add_column(
        "assessments",
        sa.Column(
            "missing_reason_at", pro_service.models.UTCDateTime(timezone=True), nullable=True
        ),
    )
    op.add_column("assessments", sa.Column("mode", sa.String(length=20), nullable=True))
    op.add_column("assessments", sa.Column("entered_by", sa.String(length=80), nullable=True))


def downgrade() -> None:
    for column in reversed(COLUMNS):
        op.drop_column("assessments", column)
