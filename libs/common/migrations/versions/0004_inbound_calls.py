"""inbound calls: phone numbers, keypad choices and recordings on calls

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "phone_numbers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "business_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("number_e164", sa.String(length=20), nullable=False),
        sa.Column("label", sa.String(length=100), server_default="", nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_phone_numbers_business_id_businesses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_phone_numbers")),
        sa.UniqueConstraint("number_e164", name="uq_phone_numbers_number"),
    )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("callback_requested", sa.Boolean(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("opted_out", sa.Boolean(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("stream_sid", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("recording_path", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("recording_bytes", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("recording_duration_ms", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("recording_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("recording_sha256")
        batch_op.drop_column("recording_duration_ms")
        batch_op.drop_column("recording_bytes")
        batch_op.drop_column("recording_path")
        batch_op.drop_column("stream_sid")
        batch_op.drop_column("opted_out")
        batch_op.drop_column("callback_requested")

    op.drop_table("phone_numbers")
