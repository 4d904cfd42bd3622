"""Voice agents: per-business agent settings (encrypted provider key), call transcripts,
agent outcome on calls

Revision ID: 0006_voice_agents
Revises: 0005
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_voice_agents"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agent_settings",
        sa.Column(
            "business_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("kind", sa.String(length=16), server_default="keypad", nullable=False),
        sa.Column("model", sa.String(length=100), server_default="", nullable=False),
        sa.Column("instructions", sa.Text(), server_default="", nullable=False),
        sa.Column("voice", sa.String(length=40), server_default="", nullable=False),
        sa.Column("tools", sa.JSON(), nullable=False),
        sa.Column("transfer_number", sa.String(length=20), nullable=True),
        sa.Column("api_key_encrypted", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_agent_settings_business_id_businesses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("business_id", name=op.f("pk_agent_settings")),
    )
    op.create_table(
        "call_transcript_lines",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("call_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.id"],
            name=op.f("fk_call_transcript_lines_call_id_calls"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_transcript_lines")),
    )
    with op.batch_alter_table("call_transcript_lines", schema=None) as batch_op:
        batch_op.create_index(
            "ix_call_transcript_lines_call_id_seq", ["call_id", "seq"], unique=False
        )

    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disposition", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("transferred_to", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("transfer_mode", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("agent_error", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("agent_error")
        batch_op.drop_column("transfer_mode")
        batch_op.drop_column("transferred_to")
        batch_op.drop_column("disposition")

    with op.batch_alter_table("call_transcript_lines", schema=None) as batch_op:
        batch_op.drop_index("ix_call_transcript_lines_call_id_seq")

    op.drop_table("call_transcript_lines")
    op.drop_table("agent_settings")
