"""Missing data: a missed time point's reason, and how answers were collected (mode, entered by)

Revision ID: missing_data
Revises: timepoint_states
Create Date: 2026-12-04 03:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import pro_service.models

revision = "missing_data"
down_revision = "timepoint_states"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("missing_reason", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("missing_reason_text", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("missing_reason_by", sa.String(length=80), nullable=True))
        batch_op.add_column(
            sa.Column(
                "missing_reason_at", pro_service.models.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(sa.Column("mode", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("entered_by", sa.String(length=80), nullable=True))
        batch_op.create_check_constraint(
            "mode", "mode IS NULL OR mode IN ('electronic', 'paper', 'telephone')"
        )


def downgrade() -> None:
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_assessments_mode"), type_="check")
        batch_op.drop_column("entered_by")
        batch_op.drop_column("mode")
        batch_op.drop_column("missing_reason_at")
        batch_op.drop_column("missing_reason_by")
        batch_op.drop_column("missing_reason_text")
        batch_op.drop_column("missing_reason")
