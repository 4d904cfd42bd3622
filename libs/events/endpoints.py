"""A business's endpoints: creating one with its secret, rotating the secret, redelivering.

The API calls these; the URL's SSRF check is the caller's (it knows the settings). Secrets are
returned once, by ``create`` and ``rotate_secret``, and stored only encrypted.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import dramatiq
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from libs.common import metrics
from libs.common.crypto import SecretBox
from libs.common.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from libs.events.catalogue import ALL_TYPES, EVENT_TYPES
from libs.events.emit import send_delivery_after_commit
from libs.events.signing import generate_secret

#: Stripe allows 16; a business with more receivers puts a fan-out of its own behind one.
MAX_ENDPOINTS = 20
MAX_DESCRIPTION = 500
#: How long a rotated-out secret keeps signing, unless the rotation says otherwise.
DEFAULT_SECRET_GRACE_S = 24 * 3600
MAX_SECRET_GRACE_S = 7 * 24 * 3600
#: Messages a bulk redelivery sends at once; the sweep sends the rest as they come due.
MAX_REDELIVERY_MESSAGES = 1000


class EndpointError(ValueError):
    """An input or a state that does not allow the change; ``code`` is the API's."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def event_types(value: Any) -> list[str]:
    """A subscription: a non-empty list of catalogue types, or ["*"]."""
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise EndpointError("bad_request", "event_types must be a non-empty array of strings")
    unknown = sorted({v for v in value if v not in EVENT_TYPES and v != ALL_TYPES})
    if unknown:
        raise EndpointError(
            "bad_request",
            f"event_types: unknown {', '.join(unknown[:10])[:300]}; "
            f"known: {', '.join(EVENT_TYPES)}, or {ALL_TYPES} for every type",
        )
    return [ALL_TYPES] if ALL_TYPES in value else sorted(set(value))


def create(
    session: Session,
    box: SecretBox,
    business_id: int,
    url: str,
    types: Iterable[str],
    description: str = "",
    enabled: bool = True,
) -> tuple[WebhookEndpoint, str]:
    """The new endpoint (flushed) and its secret, shown this once."""
    count = session.scalar(select(func.count()).where(WebhookEndpoint.business_id == business_id))
    if (count or 0) >= MAX_ENDPOINTS:
        raise EndpointError("conflict", f"a business has at most {MAX_ENDPOINTS} endpoints")
    secret = generate_secret()
    endpoint = WebhookEndpoint(
        business_id=business_id, url=url, description=description, event_types=list(types),
        enabled=enabled, secret_encrypted=box.encrypt(secret),
    )  # fmt: skip
    session.add(endpoint)
    session.flush()
    return endpoint, secret


def rotate_secret(endpoint: WebhookEndpoint, box: SecretBox, now: datetime, grace_s: int) -> str:
    """A new secret, shown this once. The current one keeps signing beside it for ``grace_s``
    (0: stops at once); a secret rotated out earlier stops now."""
    if not 0 <= grace_s <= MAX_SECRET_GRACE_S:
        raise EndpointError("bad_request", f"grace_s must be from 0 to {MAX_SECRET_GRACE_S}")
    secret = generate_secret()
    if grace_s:
        endpoint.previous_secret_encrypted = endpoint.secret_encrypted
        endpoint.previous_secret_expires_at = now + timedelta(seconds=grace_s)
    else:
        endpoint.previous_secret_encrypted = endpoint.previous_secret_expires_at = None
    endpoint.secret_encrypted = box.encrypt(secret)
    return secret


def set_enabled(session: Session, endpoint: WebhookEndpoint, enabled: bool) -> None:
    """Enable (a fresh start: past failures are not held against it) or disable (what was
    pending for it fails now, ready for a redelivery once it is enabled again)."""
    if enabled and not endpoint.enabled:
        endpoint.disabled_at = endpoint.disabled_reason = endpoint.failing_since = None
    elif not enabled and endpoint.enabled:
        fail_pending(session, endpoint.id, "the endpoint was disabled")
    endpoint.enabled = enabled


def fail_pending(session: Session, endpoint_id: int, reason: str) -> int:
    """Fail the endpoint's pending deliveries; returns how many."""
    ids = session.scalars(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == endpoint_id,
            WebhookDelivery.status == DeliveryStatus.PENDING.value,
        )
        .values(status=DeliveryStatus.FAILED.value, next_attempt_at=None, last_error=reason)
        .returning(WebhookDelivery.id)
        .execution_options(synchronize_session=False)
    ).all()
    metrics.EVENT_WEBHOOK_DELIVERIES.labels(DeliveryStatus.FAILED.value).inc(len(ids))
    return len(ids)


def redeliver(
    session: Session,
    endpoint: WebhookEndpoint,
    delivery: WebhookDelivery,
    now: datetime,
    schedule_length: int,
    broker: dramatiq.Broker | None = None,
) -> None:
    """Send the delivery's event again, now, once (a failed attempt is not retried). A pending
    delivery is tried now instead of at its next retry. The body is the event as it was."""
    if not endpoint.enabled:
        raise EndpointError("endpoint_disabled", "the endpoint is disabled; enable it first")
    if delivery.status != DeliveryStatus.PENDING:
        delivery.status = DeliveryStatus.PENDING.value
        delivery.retries_used = schedule_length
    delivery.next_attempt_at = now
    send_delivery_after_commit(session, delivery.id, broker)


def redeliver_failed(
    session: Session,
    endpoint: WebhookEndpoint,
    now: datetime,
    schedule_length: int,
    broker: dramatiq.Broker | None = None,
) -> int:
    """Every failed delivery of the endpoint, once each; returns how many."""
    if not endpoint.enabled:
        raise EndpointError("endpoint_disabled", "the endpoint is disabled; enable it first")
    ids = session.scalars(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == endpoint.id,
            WebhookDelivery.status == DeliveryStatus.FAILED.value,
        )
        .values(
            status=DeliveryStatus.PENDING.value, retries_used=schedule_length, next_attempt_at=now
        )
        .returning(WebhookDelivery.id)
        .execution_options(synchronize_session=False)
    ).all()
    for delivery_id in ids[:MAX_REDELIVERY_MESSAGES]:
        send_delivery_after_commit(session, delivery_id, broker)
    return len(ids)
