"""Inbound SMS replies remembered by the provider's message id (replays change nothing)

Revision ID: inbound_messages
Revises: timepoint_states
Create Date: 2026-12-04 02:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import pro_service.models

revision = "inbound_messages"
down_revision = "timepoint_states"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbound_messages",
        sa.Column("provider_sid", sa.String(length=64), nullable=False),
        sa.Column("received_at", pro_service.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("provider_sid", name=op.f("pk_inbound_messages")),
    )


def downgrade() -> None:
    op.drop_table("inbound_messages")
