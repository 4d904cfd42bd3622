"""API bearer tokens, stored only as a SHA-256 hash of the secret."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from libs.common.models.base import Base, BigId, TimestampMixin, UTCDateTime


class TokenRole(enum.StrEnum):
    BUSINESS = "business"
    OPERATOR = "operator"


class ApiToken(TimestampMixin, Base):
    __tablename__ = "api_tokens"
    __table_args__ = (
        # A business token always names its business; an operator token never does.
        CheckConstraint(
            "(role = 'business' AND business_id IS NOT NULL) OR "
            "(role = 'operator' AND business_id IS NULL)",
            name="role_scope",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    role: Mapped[TokenRole] = mapped_column(
        Enum(
            TokenRole,
            name="token_role",
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        )
    )
    business_id: Mapped[int | None] = mapped_column(
        ForeignKey("businesses.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    #: Hex SHA-256 of the whole token; the token itself is shown once and never stored.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The first characters of the token, to recognise it in listings.
    prefix: Mapped[str] = mapped_column(String(16))
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
