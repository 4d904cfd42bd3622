"""call outcomes: dispositions and lead recycling, outbound recordings

Revision ID: call_outcomes
Revises: event_webhooks
Create Date: 2026-12-06

Chained after event_webhooks for now; the lead re-chains it after the dialer's lifecycle
migration if that lands first.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "call_outcomes"
down_revision: str | None = "event_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "dispositions",
        sa.Column("id", _ID, nullable=False),
        sa.Column("business_id", _ID, nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("label", sa.String(length=100), server_default="", nullable=False),
        sa.Column("outcomes", sa.JSON(), nullable=False),
        sa.Column("action", sa.String(length=8), server_default="none", nullable=False),
        sa.Column("retry_after_h", sa.Integer(), nullable=True),
        sa.Column("move_to_run_id", _ID, nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "retry_after_h IS NULL OR retry_after_h BETWEEN 1 AND 720",
            name=op.f("ck_dispositions_retry_after_h"),
        ),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_dispositions_business_id_businesses"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["move_to_run_id"],
            ["runs.id"],
            name=op.f("fk_dispositions_move_to_run_id_runs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispositions")),
        sa.UniqueConstraint("business_id", "code", name="uq_dispositions_business_code"),
    )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disposition_source", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column("outcome_applied_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("recycled_disposition", sa.String(length=32), nullable=True))
        batch_op.create_index(
            "ix_calls_outcome_applied_at_ended_at", ["outcome_applied_at", "ended_at"], unique=False
        )
        batch_op.add_column(sa.Column("recording_sid", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("recording_url", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("recording_channels", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("recording_expired_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("transcribed_by", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("price_micros", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("price_unit", sa.String(length=3), nullable=True))
        batch_op.add_column(sa.Column("machine_action", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("amd_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("agent_first_audio_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("abandoned", sa.Boolean(), nullable=True))
        batch_op.create_index("ix_calls_run_id_ended_at", ["run_id", "ended_at"], unique=False)
        batch_op.create_unique_constraint("uq_calls_recording_sid", ["recording_sid"])
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("record_calls", sa.Boolean(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("amd_mode", sa.String(length=16), server_default="off", nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "machine_action", sa.String(length=16), server_default="hang_up", nullable=False
            )
        )
        batch_op.add_column(sa.Column("voicemail_text", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("voicemail_audio_url", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("voicemail_audio", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("voicemail_audio_type", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("voicemail_audio_token", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("machine_counts_as_attempt", sa.Boolean(), server_default="1", nullable=False)
        )
        batch_op.add_column(sa.Column("machine_retry_delay_s", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("paused_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("auto_paused_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("businesses", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recording_retention_days", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("businesses", schema=None) as batch_op:
        batch_op.drop_column("recording_retention_days")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("auto_paused_at")
        batch_op.drop_column("paused_reason")
        batch_op.drop_column("machine_retry_delay_s")
        batch_op.drop_column("machine_counts_as_attempt")
        batch_op.drop_column("voicemail_audio_token")
        batch_op.drop_column("voicemail_audio_type")
        batch_op.drop_column("voicemail_audio")
        batch_op.drop_column("voicemail_audio_url")
        batch_op.drop_column("voicemail_text")
        batch_op.drop_column("machine_action")
        batch_op.drop_column("amd_mode")
        batch_op.drop_column("record_calls")
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_constraint("uq_calls_recording_sid", type_="unique")
        batch_op.drop_column("transcribed_by")
        batch_op.drop_column("price_unit")
        batch_op.drop_column("amd_at")
        batch_op.drop_index("ix_calls_run_id_ended_at")
        batch_op.drop_column("abandoned")
        batch_op.drop_column("agent_first_audio_at")
        batch_op.drop_column("answered_at")
        batch_op.drop_column("machine_action")
        batch_op.drop_column("price_micros")
        batch_op.drop_column("recording_expired_at")
        batch_op.drop_column("recording_channels")
        batch_op.drop_column("recording_url")
        batch_op.drop_column("recording_sid")
        batch_op.drop_index("ix_calls_outcome_applied_at_ended_at")
        batch_op.drop_column("recycled_disposition")
        batch_op.drop_column("outcome_applied_at")
        batch_op.drop_column("disposition_source")
    op.drop_table("dispositions")
