"""Scheduler heartbeats record how long the pass took, for the metrics

Revision ID: scheduler_pass_duration
Revises: administration
Create Date: 2026-12-04 10:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "scheduler_pass_duration"
down_revision = "administration"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scheduler_heartbeats", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_pass_seconds", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("scheduler_heartbeats", schema=None) as batch_op:
        batch_op.drop_column("last_pass_seconds")
