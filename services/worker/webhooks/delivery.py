"""A delivery's attempts, as rows: claiming one, recording its answer, scheduling the retry.

No transaction stays open while the endpoint is asked. The claim commits first: it moves the
delivery's ``next_attempt_at`` past the attempt's longest possible duration (the lease) and
inserts the attempt ``in_flight``. A second message for the same delivery finds it not due and
does nothing; a worker killed mid-request leaves a delivery that becomes due again when the
lease ends, and the sweep sends it (the receiver may see the event twice, with the same
``webhook-id``: delivery is at least once, and that id is the idempotency key).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, func, update
from sqlalchemy.orm import Session

from libs.common import metrics
from libs.common.crypto import SecretBox, secret_box
from libs.common.models import (
    AttemptOutcome,
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from libs.common.settings import Settings
from libs.events import endpoints
from services.worker.webhooks.sender import Answer

logger = logging.getLogger(__name__)

#: Added to two request timeouts to make the lease: generous, as a lease that ends while the
#: request still runs would let a second attempt start beside it.
LEASE_MARGIN_S = 10.0
#: A retry due later than this waits for the sweep instead of a delayed message.
MAX_MESSAGE_DELAY_S = 600.0

DELIVERIES = cast(Table, WebhookDelivery.__table__)
ENDPOINTS = cast(Table, WebhookEndpoint.__table__)


def lease_s(settings: Settings) -> float:
    return 2 * settings.webhook_timeout_s + LEASE_MARGIN_S


@functools.cache
def _box(settings: Settings) -> SecretBox:
    return secret_box(settings)


@dataclass(frozen=True)
class Claimed:
    delivery_id: int
    attempt_id: int
    number: int
    endpoint_id: int
    url: str
    event_id: str
    payload: dict[str, Any]
    #: Newest first: the current secret, then the previous one while its grace lasts.
    secrets: tuple[str, ...]


def claim(session: Session, delivery_id: int, now: datetime, settings: Settings) -> Claimed | None:
    """Take the delivery for one attempt if it is due; None when it is not (already sent,
    final, or another worker holds it). The caller commits before sending."""
    claimed = session.execute(
        update(DELIVERIES)
        .where(
            DELIVERIES.c.id == delivery_id,
            DELIVERIES.c.status == DeliveryStatus.PENDING.value,
            DELIVERIES.c.next_attempt_at <= now,
        )
        .values(
            next_attempt_at=now + timedelta(seconds=lease_s(settings)),
            attempt_count=DELIVERIES.c.attempt_count + 1,
            last_attempt_at=now,
        )
        .returning(DELIVERIES.c.attempt_count, DELIVERIES.c.endpoint_id, DELIVERIES.c.event_id)
    ).one_or_none()
    if claimed is None:
        return None
    number, endpoint_id, event_pk = claimed
    endpoint = session.get_one(WebhookEndpoint, endpoint_id)
    if not endpoint.enabled:
        delivery = session.get_one(WebhookDelivery, delivery_id, populate_existing=True)
        _finish(delivery, DeliveryStatus.FAILED, now, error="the endpoint is disabled")
        return None
    event = session.get_one(WebhookEvent, event_pk)
    attempt = WebhookAttempt(delivery_id=delivery_id, number=number, started_at=now)
    session.add(attempt)
    session.flush()
    box = _box(settings)
    secrets = [box.decrypt(endpoint.secret_encrypted)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_encrypted and expires is not None and expires > now:
        secrets.append(box.decrypt(endpoint.previous_secret_encrypted))
    return Claimed(delivery_id, attempt.id, number, endpoint_id, endpoint.url, event.public_id,
                   event.payload, tuple(secrets))  # fmt: skip


def record(
    session: Session, claimed: Claimed, answer: Answer, now: datetime, settings: Settings
) -> float | None:
    """Store the attempt's answer and what follows; returns the delay of the retry when one is
    scheduled. The caller commits."""
    succeeded = answer.outcome is AttemptOutcome.SUCCEEDED
    # Locked first, as redelivery does; gone when the endpoint (or business) was deleted
    # during the attempt: nothing is left to record.
    delivery = session.get(WebhookDelivery, claimed.delivery_id, with_for_update=True)
    attempt = session.get(WebhookAttempt, claimed.attempt_id)
    if delivery is None or attempt is None:
        return None
    attempt.outcome = answer.outcome.value
    attempt.finished_at = now
    attempt.http_status = answer.http_status
    attempt.latency_ms = round(answer.latency_s * 1000)
    attempt.response_snippet = answer.snippet
    attempt.error = answer.error
    delivery.last_http_status, delivery.last_error = answer.http_status, answer.error
    retry_in: float | None = None
    if delivery.status != DeliveryStatus.PENDING:
        pass  # finished meanwhile (a late success of an earlier attempt; disabled endpoint)
    elif succeeded:
        _finish(delivery, DeliveryStatus.SUCCEEDED, now)
    elif delivery.attempt_count == claimed.number:  # no newer attempt has started since
        schedule = settings.webhook_retry_schedule_s
        if delivery.retries_used < len(schedule):
            retry_in = schedule[delivery.retries_used]
            delivery.retries_used += 1
            delivery.next_attempt_at = now + timedelta(seconds=retry_in)
        else:
            _finish(delivery, DeliveryStatus.FAILED, now, error=answer.error)
    # Before the Core statements below: they must not overtake the changes above.
    session.flush()
    _endpoint_health(session, claimed.endpoint_id, succeeded, now, settings)
    return retry_in


def _finish(
    delivery: WebhookDelivery, status: DeliveryStatus, now: datetime, error: str | None = None
) -> None:
    delivery.status, delivery.next_attempt_at = status.value, None
    if status is DeliveryStatus.SUCCEEDED:
        delivery.succeeded_at, delivery.last_error = now, None
    elif error:
        delivery.last_error = error
    metrics.EVENT_WEBHOOK_DELIVERIES.labels(status.value).inc()


def _endpoint_health(
    session: Session, endpoint_id: int, succeeded: bool, now: datetime, settings: Settings
) -> None:
    where = ENDPOINTS.c.id == endpoint_id
    if succeeded:
        session.execute(update(ENDPOINTS).where(where).values(failing_since=None,
                                                              last_success_at=now))  # fmt: skip
        return
    since = session.execute(
        update(ENDPOINTS)
        .where(where)
        .values(failing_since=func.coalesce(ENDPOINTS.c.failing_since, now))
        .returning(ENDPOINTS.c.failing_since, ENDPOINTS.c.enabled)
    ).one_or_none()
    if since is None or not since.enabled:
        return
    failing_since = since.failing_since
    if now - failing_since >= timedelta(seconds=settings.webhook_disable_after_s):
        disable(session, endpoint_id, failing_since, now)


def disable(session: Session, endpoint_id: int, failing_since: datetime, now: datetime) -> None:
    """Turn off an endpoint whose deliveries keep failing, and fail what was still pending
    for it (a redelivery of the failed ones sends them once it is enabled again)."""
    reason = (
        f"Disabled on {now:%Y-%m-%d %H:%M} UTC: every delivery attempt since "
        f"{failing_since:%Y-%m-%d %H:%M} UTC failed. Fix the receiver, enable the endpoint, "
        "then redeliver the failed deliveries."
    )
    session.execute(
        update(ENDPOINTS)
        .where(ENDPOINTS.c.id == endpoint_id)
        .values(enabled=False, disabled_at=now, disabled_reason=reason)
    )
    failed = endpoints.fail_pending(session, endpoint_id, "the endpoint was disabled")
    metrics.EVENT_WEBHOOK_ENDPOINTS_DISABLED.inc()
    logger.warning(
        "webhook endpoint %d disabled: failing since %s; %d pending deliveries failed",
        endpoint_id, failing_since.isoformat(), failed,
    )  # fmt: skip
