"""Anchors as data: dates a nurse records for a schedule's own anchors (the decision not to
operate), and the date and kind of a patient's status

Revision ID: anchor_dates
Revises: review_flag
Create Date: 2026-12-04 14:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pro_service.models import UTCDateTime

revision = "anchor_dates"
down_revision = "review_flag"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "patient_anchor_dates",
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("anchor", sa.String(length=20), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("recorded_by", sa.String(length=80), nullable=True),
        sa.ForeignKeyConstraint(
            ["patient_id"],
            ["patients.id"],
            name=op.f("fk_patient_anchor_dates_patient_id_patients"),
        ),
        sa.PrimaryKeyConstraint("patient_id", "anchor", name=op.f("pk_patient_anchor_dates")),
    )
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status_date", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("withdrawal_kind", sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("patients", schema=None) as batch_op:
        batch_op.drop_column("withdrawal_kind")
        batch_op.drop_column("status_date")
    op.drop_table("patient_anchor_dates")
