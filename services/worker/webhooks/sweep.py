"""The sweep's steps (``webhooks.sweep``): what makes deliveries independent of messages.

Each is idempotent and bounded per pass. A delivery is sent again only once it has been due for
``grace_s`` (three sweep periods), so one whose message is merely waiting in the queue is not
sent twice; the sweep then sets ``next_attempt_at`` to now, so the row waits ``grace_s`` again
before another message, however long the queue is.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, cast

import dramatiq
from sqlalchemy import CursorResult, delete, exists, func, select, update
from sqlalchemy.orm import Session

from libs.common import metrics
from libs.common.contracts import WEBHOOKS_DELIVER
from libs.common.models import (
    AttemptOutcome,
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvent,
)
from libs.common.settings import Settings
from services.worker.webhooks.delivery import lease_s

logger = logging.getLogger(__name__)

#: Rows each step handles per pass, so a pass stays short whatever the backlog.
BATCH = 1000
#: A delivery whose worker died this many times is failed instead of tried again (a body or an
#: answer that kills the worker must not loop forever).
MAX_ABANDONED = 3

PENDING = DeliveryStatus.PENDING.value


def grace_s(settings: Settings) -> float:
    return 3 * settings.webhook_sweep_s


def close_abandoned_attempts(session: Session, now: datetime, settings: Settings) -> int:
    """Attempts still in flight past the lease: their worker died before recording an answer.
    Their delivery is due again already (the lease was its next_attempt_at)."""
    cutoff = now - timedelta(seconds=lease_s(settings))
    ids = session.scalars(
        select(WebhookAttempt.id)
        .where(
            WebhookAttempt.outcome == AttemptOutcome.IN_FLIGHT.value,
            WebhookAttempt.started_at < cutoff,
        )
        .limit(BATCH)
    ).all()
    if not ids:
        return 0
    session.execute(
        update(WebhookAttempt)
        .where(WebhookAttempt.id.in_(ids))
        .values(
            outcome=AttemptOutcome.ABANDONED.value,
            finished_at=now,
            error="no answer was recorded: the worker stopped during the attempt",
        )
    )
    metrics.EVENT_WEBHOOK_ATTEMPTS.labels(AttemptOutcome.ABANDONED.value).inc(len(ids))
    logger.warning("webhook sweep: %d attempts abandoned by a stopped worker", len(ids))
    # Deliveries whose worker died MAX_ABANDONED times: give up on them.
    abandoned = (
        select(func.count())
        .where(
            WebhookAttempt.delivery_id == WebhookDelivery.id,
            WebhookAttempt.outcome == AttemptOutcome.ABANDONED.value,
        )
        .scalar_subquery()
    )
    doomed = cast(
        CursorResult[Any],
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.status == PENDING, abandoned >= MAX_ABANDONED)
            .values(
                status=DeliveryStatus.FAILED.value,
                next_attempt_at=None,
                last_error=f"the worker stopped during {MAX_ABANDONED} attempts",
            )
            .execution_options(synchronize_session=False)
        ),
    ).rowcount
    if doomed:
        metrics.EVENT_WEBHOOK_DELIVERIES.labels(DeliveryStatus.FAILED.value).inc(doomed)
    return len(ids)


def resend_due(session: Session, now: datetime, settings: Settings) -> list[int]:
    """Deliveries due for ``grace_s`` with no attempt under way: send their message again.
    The caller commits, then sends (``send``)."""
    cutoff = now - timedelta(seconds=grace_s(settings))
    ids = list(
        session.scalars(
            select(WebhookDelivery.id)
            .where(WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= cutoff)
            .order_by(WebhookDelivery.next_attempt_at)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        )
    )
    if ids:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(ids))
            .values(next_attempt_at=now)
            .execution_options(synchronize_session=False)
        )
    return ids


def send(broker: dramatiq.Broker, delivery_ids: list[int]) -> None:
    for delivery_id in delivery_ids:
        broker.enqueue(WEBHOOKS_DELIVER.message(delivery_id=delivery_id))
    if delivery_ids:
        logger.info("webhook sweep: sent %d due deliveries again", len(delivery_ids))


def delete_expired_events(session: Session, now: datetime, settings: Settings) -> int:
    """Events older than the retention, with their deliveries and attempts (cascade), once
    none of their deliveries is still pending."""
    cutoff = now - timedelta(days=settings.webhook_retention_days)
    pending = exists().where(
        WebhookDelivery.event_id == WebhookEvent.id, WebhookDelivery.status == PENDING
    )
    ids = session.scalars(
        select(WebhookEvent.id).where(WebhookEvent.created_at < cutoff, ~pending).limit(BATCH)
    ).all()
    if ids:
        session.execute(
            delete(WebhookEvent)
            .where(WebhookEvent.id.in_(ids))
            .execution_options(synchronize_session=False)
        )
    return len(ids)


def export_backlog(session: Session, now: datetime) -> None:
    count, oldest = session.execute(
        select(func.count(), func.min(WebhookDelivery.next_attempt_at)).where(
            WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= now
        )
    ).one()
    metrics.EVENT_WEBHOOK_DUE.set(count)
    age = (now - oldest).total_seconds() if oldest is not None else 0.0
    metrics.EVENT_WEBHOOK_OLDEST_DUE_SECONDS.set(max(age, 0.0))
