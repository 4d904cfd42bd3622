"""outcomes.price: a partial index of the answered calls without a price

Revision ID: unpriced_calls
Revises: compliance_limits
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "unpriced_calls"
down_revision: str | None = "compliance_limits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNPRICED = "price_micros IS NULL AND status = 'completed'"


def upgrade() -> None:
    # One price message prices every unpriced call (issue 19): it reads this index, which holds
    # only calls the provider has not priced yet, instead of every answered call of hours.
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.create_index(
            "ix_calls_unpriced_ended_at",
            ["ended_at"],
            unique=False,
            postgresql_where=sa.text(UNPRICED),
            sqlite_where=sa.text(UNPRICED),
        )


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index("ix_calls_unpriced_ended_at")
