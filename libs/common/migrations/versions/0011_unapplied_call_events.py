"""calls.status_changed: a partial index of the status callbacks not applied yet

Revision ID: unapplied_call_events
Revises: unpriced_calls
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "unapplied_call_events"
down_revision: str | None = "unpriced_calls"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNAPPLIED = "NOT applied"


def upgrade() -> None:
    # The calls service stores callbacks and a worker applies them (issue 19): the reconciler
    # re-sends the message of one left unapplied. This index holds only those (seconds' worth,
    # and callbacks of calls never known), not every callback ever received.
    with op.batch_alter_table("call_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_call_events_unapplied_received_at",
            ["received_at"],
            unique=False,
            postgresql_where=sa.text(UNAPPLIED),
            sqlite_where=sa.text(UNAPPLIED),
        )


def downgrade() -> None:
    with op.batch_alter_table("call_events", schema=None) as batch_op:
        batch_op.drop_index("ix_call_events_unapplied_received_at")
