"""Patient pages: rate-limit counters for questionnaire-link lookups

Revision ID: patient
Revises: 0001
Create Date: 2026-11-28 04:33:52.608296
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import pro_service.models

revision = "patient"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_counters",
        sa.Column("bucket", sa.String(length=64), nullable=False),
        sa.Column("window_start", pro_service.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", "window_start", name=op.f("pk_rate_limit_counters")),
    )


def downgrade() -> None:
    op.drop_table("rate_limit_counters")
