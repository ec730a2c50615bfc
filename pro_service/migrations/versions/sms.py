"""SMS scheduling: invitation and reminder bookkeeping on assessments, indexes for idle passes

Revision ID: sms
Revises: patient
Create Date: 2026-11-28 04:35:06.404602
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import pro_service.models

revision = "sms"
down_revision = "patient"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "invitation_queued_at", pro_service.models.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(sa.Column("next_reminder_on", sa.Date(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_assessments_next_reminder_on"), ["next_reminder_on"], unique=False
        )
        batch_op.create_index(
            "ix_assessments_status_closes", ["status", "window_closes"], unique=False
        )
        batch_op.create_index(
            "ix_assessments_status_invitation", ["status", "invitation_queued_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.drop_index("ix_assessments_status_invitation")
        batch_op.drop_index("ix_assessments_status_closes")
        batch_op.drop_index(batch_op.f("ix_assessments_next_reminder_on"))
        batch_op.drop_column("next_reminder_on")
        batch_op.drop_column("invitation_queued_at")
