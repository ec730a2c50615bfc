"""Time points can end partial; anchors are named by the schedule file, not by the schema

Revision ID: timepoint_states
Revises: score_language
Create Date: 2026-12-04 02:00:00
"""

from __future__ import annotations

from alembic import op

revision = "timepoint_states"
down_revision = "score_language"
branch_labels = None
depends_on = None

OLD = "'scheduled', 'open', 'in_progress', 'completed', 'expired', 'cancelled'"
NEW = "'scheduled', 'open', 'in_progress', 'completed', 'partial', 'expired', 'cancelled'"


def upgrade() -> None:
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_assessments_status"), type_="check")
        batch_op.drop_constraint(op.f("ck_assessments_anchor"), type_="check")
        batch_op.create_check_constraint("status", f"status IN ({NEW})")


def downgrade() -> None:
    # A partial time point goes back to what it was before this revision knew the state.
    op.execute("UPDATE assessments SET status = 'expired' WHERE status = 'partial'")
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_assessments_status"), type_="check")
        batch_op.create_check_constraint("status", f"status IN ({OLD})")
        batch_op.create_check_constraint("anchor", "anchor IN ('inclusion', 'surgery')")
