"""A completed time point that a date move puts outside its window is flagged for review

Revision ID: review_flag
Revises: answer_mode
Create Date: 2026-12-04 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "review_flag"
down_revision = "answer_mode"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("review_flag", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.drop_column("review_flag")
