"""Scheduler heartbeats: the last pass of each scheduler process, for `pro-service check`

Revision ID: scheduler_heartbeats
Revises: missing_data
Create Date: 2026-12-04 06:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import pro_service.models

revision = "scheduler_heartbeats"
down_revision = "missing_data"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduler_heartbeats",
        sa.Column("worker", sa.String(length=120), nullable=False),
        sa.Column("last_job", sa.String(length=40), nullable=False),
        sa.Column("last_pass_at", pro_service.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("worker", name=op.f("pk_scheduler_heartbeats")),
    )


def downgrade() -> None:
    op.drop_table("scheduler_heartbeats")
