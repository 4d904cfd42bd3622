"""compliance limits per run: abandonment (at most 3 %) and provider failures

Revision ID: compliance_limits
Revises: call_outcomes
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "compliance_limits"
down_revision: str | None = "call_outcomes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing runs get today's constants: nothing changes for them.
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("max_abandon_rate", sa.Float(), server_default="0.03", nullable=False)
        )
        batch_op.add_column(
            sa.Column("max_failure_rate", sa.Float(), server_default="0.5", nullable=False)
        )
        batch_op.add_column(
            sa.Column("failure_window_s", sa.Integer(), server_default="600", nullable=False)
        )
        batch_op.add_column(
            sa.Column("min_failure_sample", sa.Integer(), server_default="10", nullable=False)
        )
        batch_op.create_check_constraint(
            op.f("ck_runs_max_abandon_rate"), "max_abandon_rate BETWEEN 0 AND 0.03"
        )
        batch_op.create_check_constraint(
            op.f("ck_runs_max_failure_rate"), "max_failure_rate > 0 AND max_failure_rate <= 1"
        )
        batch_op.create_check_constraint(op.f("ck_runs_failure_window_s"), "failure_window_s > 0")
        batch_op.create_check_constraint(
            op.f("ck_runs_min_failure_sample"), "min_failure_sample >= 1"
        )


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_runs_min_failure_sample"), type_="check")
        batch_op.drop_constraint(op.f("ck_runs_failure_window_s"), type_="check")
        batch_op.drop_constraint(op.f("ck_runs_max_failure_rate"), type_="check")
        batch_op.drop_constraint(op.f("ck_runs_max_abandon_rate"), type_="check")
        batch_op.drop_column("min_failure_sample")
        batch_op.drop_column("failure_window_s")
        batch_op.drop_column("max_failure_rate")
        batch_op.drop_column("max_abandon_rate")
