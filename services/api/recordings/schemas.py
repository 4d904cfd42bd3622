"""Recordings: the business's retention period."""

from __future__ import annotations

from pydantic import Field

from services.api.schemas import Body, Shape

_RETENTION = Field(
    description="recordings (inbound and outbound) are deleted this many days after their "
    "call ended; null keeps them"
)


class RecordingSettings(Shape):
    retention_days: int | None = _RETENTION


class RecordingSettingsInput(Body):
    retention_days: int | None = Field(ge=1, le=3650, description=_RETENTION.description)
