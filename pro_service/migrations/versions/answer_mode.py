"""Time points answered before paper and telephone entry existed were answered on the phone

Revision ID: answer_mode
Revises: scheduler_pass_duration
Create Date: 2026-12-04 11:40:00
"""

from __future__ import annotations

from alembic import op

revision = "answer_mode"
down_revision = "scheduler_pass_duration"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "UPDATE assessments SET mode = 'electronic' "
        "WHERE mode IS NULL AND status IN ('completed', 'partial')"
    )


def downgrade() -> None:
    pass  # the mode is true either way
