"""Event webhooks: a business's endpoints, the events recorded for them, and each delivery of an
event to an endpoint with its attempts (the delivery log).

The rows are the outbox: an event and its deliveries are written in the transaction of the
change that caused them, and a delivery is due while it is ``pending`` and its
``next_attempt_at`` has passed. Messages only make a due delivery go sooner; the sweep
(``webhooks.sweep``) sends again whatever is due and was not sent.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from libs.common.models.base import Base, BigId, TimestampMixin, UTCDateTime, utcnow


class DeliveryStatus(enum.StrEnum):
    #: Due at ``next_attempt_at`` (or being attempted: the claim pushes it past the attempt).
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    #: Retries exhausted, or the endpoint was disabled; a redelivery makes it pending again.
    FAILED = "failed"


class AttemptOutcome(enum.StrEnum):
    IN_FLIGHT = "in_flight"
    SUCCEEDED = "succeeded"
    #: The endpoint answered, with a status other than 2xx (redirects are not followed).
    HTTP_ERROR = "http_error"
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"
    #: Not sent: the URL resolved to an address deliveries may not reach (SSRF guard).
    REFUSED = "refused"
    #: The worker stopped before recording an answer (found by the sweep).
    ABANDONED = "abandoned"


class WebhookEndpoint(TimestampMixin, Base):
    """A URL of a business's own systems and the event types it receives. Signing secrets are
    only ever stored encrypted (libs.common.crypto)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    business_id: Mapped[int] = mapped_column(
        ForeignKey("businesses.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str] = mapped_column(String(500), default="", server_default="")
    #: Event type names, or ["*"] for every type (including types added later).
    event_types: Mapped[list[str]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(default=True, server_default="1")
    secret_encrypted: Mapped[str] = mapped_column(Text)
    #: The secret before the last rotation, still signing alongside the new one until
    #: ``previous_secret_expires_at`` (receivers switch over without missing a delivery).
    previous_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: First failed attempt since the last success; None while the endpoint is healthy.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Set when deliveries disabled the endpoint (failing too long); cleared by enabling it.
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    disabled_reason: Mapped[str | None] = mapped_column(Text)

    def wants(self, event_type: str) -> bool:
        return "*" in self.event_types or event_type in self.event_types


class WebhookEvent(Base):
    """Something that happened in a business, recorded once for the endpoints that want it."""

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    #: "evt_…": the id receivers see (webhook-id header, payload "id"); their idempotency key.
    public_id: Mapped[str] = mapped_column(String(40), unique=True)
    business_id: Mapped[int] = mapped_column(
        ForeignKey("businesses.id", ondelete="CASCADE"), index=True
    )
    type: Mapped[str] = mapped_column(String(64))
    #: The whole body sent, {"id", "type", "timestamp", "data"}, as the catalogue defines it.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookDelivery(TimestampMixin, Base):
    """One event to one endpoint, until it succeeds or its retries run out."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id", name="uq_webhook_deliveries_event_endpoint"),
        # The sweep's query: due pending deliveries.
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        # The delivery log of an endpoint, newest first.
        Index("ix_webhook_deliveries_endpoint_id_id", "endpoint_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    #: Copied from the endpoint so a business's queries need no join.
    business_id: Mapped[int] = mapped_column(
        ForeignKey("businesses.id", ondelete="CASCADE"), index=True
    )
    event_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING.value)
    #: Attempts started, in all (numbers the attempt rows).
    attempt_count: Mapped[int] = mapped_column(default=0, server_default="0")
    #: Retries of the schedule used so far; a manual redelivery sets it to the end (one try).
    retries_used: Mapped[int] = mapped_column(default=0, server_default="0")
    #: When the next attempt is due; None once final.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_http_status: Mapped[int | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    succeeded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookAttempt(Base):
    """One HTTP request of a delivery: what the endpoint answered, or why there was no answer."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        UniqueConstraint("delivery_id", "number", name="uq_webhook_attempts_delivery_number"),
        Index("ix_webhook_attempts_outcome_started_at", "outcome", "started_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    number: Mapped[int] = mapped_column()
    outcome: Mapped[str] = mapped_column(String(16), default=AttemptOutcome.IN_FLIGHT.value)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    http_status: Mapped[int | None] = mapped_column()
    latency_ms: Mapped[int | None] = mapped_column()
    #: The start of the answer's body (at most RESPONSE_SNIPPET bytes, decoded leniently).
    response_snippet: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
