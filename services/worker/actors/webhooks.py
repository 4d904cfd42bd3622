"""webhooks.deliver and webhooks.sweep: event webhooks to the businesses' own systems."""

from __future__ import annotations

import logging
import time

from libs.common import metrics
from libs.common.contracts import WEBHOOKS_DELIVER, WEBHOOKS_SWEEP
from libs.common.models import AttemptOutcome, utcnow
from libs.events import catalogue, signing
from libs.queueops.middleware.worker_context import worker_context
from services.worker.registry import implements
from services.worker.webhooks import delivery, sender, sweep

logger = logging.getLogger(__name__)

for _result in AttemptOutcome:
    if _result is not AttemptOutcome.IN_FLIGHT:  # exported at zero, so rate() and alerts see it
        metrics.EVENT_WEBHOOK_ATTEMPTS.labels(_result.value)
for _status in ("succeeded", "failed"):
    metrics.EVENT_WEBHOOK_DELIVERIES.labels(_status)


@implements(WEBHOOKS_DELIVER)
def deliver(delivery_id: int) -> None:
    """One attempt, if the delivery is due; a message for one that is not changes nothing."""
    ctx = worker_context()
    settings = ctx.settings
    with ctx.database.session() as session:
        claimed = delivery.claim(session, delivery_id, utcnow(), settings)
        session.commit()
    if claimed is None:
        return
    body = catalogue.encode(claimed.payload)
    headers = signing.headers(claimed.secrets, claimed.event_id, int(time.time()), body)
    answer = sender.post(
        claimed.url,
        body,
        headers,
        timeout_s=settings.webhook_timeout_s,
        allow_private=settings.webhooks_allow_private,
    )
    metrics.EVENT_WEBHOOK_ATTEMPTS.labels(answer.outcome.value).inc()
    metrics.EVENT_WEBHOOK_ATTEMPT_SECONDS.observe(answer.latency_s)
    with ctx.database.session() as session:
        retry_in = delivery.record(session, claimed, answer, utcnow(), settings)
        session.commit()
    if retry_in is not None and retry_in <= delivery.MAX_MESSAGE_DELAY_S:
        # After the commit. Lost, it is re-sent by the sweep once due.
        message = WEBHOOKS_DELIVER.message(delivery_id=delivery_id)
        try:
            ctx.broker.enqueue(message, delay=int(retry_in * 1000))
        except Exception as exc:  # any broker's connection error: the row is the truth
            logger.warning("webhooks.deliver: retry of delivery %d not queued (%s); the sweep "
                           "sends it", delivery_id, type(exc).__name__)  # fmt: skip


@implements(WEBHOOKS_SWEEP)
def sweep_deliveries(period_start: int) -> None:
    """Idempotent: running a period twice changes nothing more."""
    ctx = worker_context()
    settings = ctx.settings
    now = utcnow()
    with ctx.database.session() as session:
        sweep.close_abandoned_attempts(session, now, settings)
        due = sweep.resend_due(session, now, settings)
        session.commit()
    sweep.send(ctx.broker, due)
    with ctx.database.session() as session:
        sweep.delete_expired_events(session, now, settings)
        session.commit()
        sweep.export_backlog(session, now)
