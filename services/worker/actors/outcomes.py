"""outcomes.apply and outcomes.sweep: the disposition and lead recycling of ended calls."""

from __future__ import annotations

import logging

from libs.common.contracts import OUTCOMES_APPLY, OUTCOMES_SWEEP, RECORDINGS_FETCH
from libs.common.middleware.worker_context import worker_context
from libs.common.models import utcnow
from libs.common.outcomes import recordings
from libs.common.outcomes.apply import apply_outcome, unapplied_calls
from services.worker.registry import implements

logger = logging.getLogger(__name__)


@implements(OUTCOMES_APPLY)
def apply(call_id: int) -> None:
    """Idempotent: a redelivered message finds the outcome applied and changes nothing."""
    ctx = worker_context()
    with ctx.database.session() as session:
        result = apply_outcome(session, call_id, utcnow())
        session.commit()
    if result is None:
        logger.info("outcomes.apply: call %d not found or not ended", call_id)


@implements(OUTCOMES_SWEEP)
def sweep(period_start: int) -> None:
    """Ended calls whose outcomes.apply message was lost (or never sent), each in its own
    transaction so one bad row does not hold up the rest; recordings whose fetch was lost."""
    ctx = worker_context()
    now = utcnow()
    with ctx.database.session() as session:
        call_ids = unapplied_calls(session, now)
        unfetched = recordings.unfetched(session, now)
    for call_id in unfetched:  # fetching is idempotent: a slow fetch fetched twice is harmless
        ctx.broker.enqueue(RECORDINGS_FETCH.message(call_id=call_id))
    for call_id in call_ids:
        with ctx.database.session() as session:
            apply_outcome(session, call_id, now)
            session.commit()
    if call_ids:
        logger.info("outcomes.sweep: applied %d call outcomes", len(call_ids))
