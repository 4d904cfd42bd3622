"""calls.status_changed: apply a call's stored status callbacks, then fill the slot its end
freed in place (what a ``dialer.dispatch`` message would have done one hop later)."""

from __future__ import annotations

import logging

from libs.campaigns.lifecycle import followups
from libs.campaigns.lifecycle import status as lifecycle
from libs.common import metrics
from libs.common.contracts import CALLS_STATUS_CHANGED
from libs.common.models import utcnow
from libs.queueops.middleware.worker_context import worker_context
from libs.queueops.outbox import enqueue_after_commit, send_committed
from services.worker.actors.dialer import fill_and_place
from services.worker.registry import implements

logger = logging.getLogger(__name__)


@implements(CALLS_STATUS_CHANGED)
def status_changed(sid: str, status: str, job_id: int | None, attempt: int | None) -> None:
    """Idempotent: a redelivered (or re-sent) message finds the callbacks applied."""
    ctx = worker_context()
    fill: set[int] = set()
    with ctx.database.session() as session:
        applied = lifecycle.apply_callbacks(session, sid, job_id, attempt, utcnow())
        if applied is None:
            # Kept unapplied: when a worker stores this call id, it applies them.
            session.rollback()
            metrics.CALL_EVENTS.labels(status, "unknown_call").inc()
            logger.warning("status %s for unknown call %s", status, sid)
            return
        for outgoing in (o for a in applied for o in a.followups):
            business_id = followups.immediate_dispatch(outgoing)
            if business_id is None:
                enqueue_after_commit(session, outgoing, ctx.broker)
            else:
                fill.add(business_id)
        session.commit()
    for business_id in sorted(fill):
        # This worker is here already: the dispatch pass runs now, with the dispatch mark's
        # rules (it clears the business's mark before reading the free slots, so a dispatch
        # waiting meanwhile finds nothing, and a slot freed from now on sends a new one).
        try:
            fill_and_place(ctx, business_id)
        except Exception:
            # A retry of this message would find its callbacks applied and fill nothing: the
            # pass is handed to a dialer.dispatch message, which has retries of its own.
            logger.exception("dispatch pass of business %s failed; sending it", business_id)
            send_committed([followups.dispatch(business_id)], ctx.broker)
