"""dialer.dispatch: place calls for a business while it has capacity and due jobs."""

from __future__ import annotations

import logging
import time

from libs.common.contracts import DIALER_DISPATCH
from libs.common.middleware.worker_context import worker_context
from libs.common.models import utcnow
from services.worker.dialer.claim import claim_next, has_due_work
from services.worker.dialer.placer import place_call
from services.worker.registry import implements

logger = logging.getLogger(__name__)

#: Calls placed per message before handing the thread back (fairness across businesses).
CALLS_PER_MESSAGE = 10
#: Waits for the CPS limiter up to this long in place; longer waits become a delayed message.
INLINE_WAIT_S = 1.0


@implements(DIALER_DISPATCH)
def dispatch(business_id: int) -> None:
    ctx = worker_context()
    for _ in range(CALLS_PER_MESSAGE):
        with ctx.database.session() as session:
            if not has_due_work(session, business_id, utcnow()):
                return
        wait = ctx.limiter.try_acquire()
        if wait > 0:
            if wait <= INLINE_WAIT_S:
                time.sleep(wait)
                continue
            message = DIALER_DISPATCH.message(business_id=business_id)
            ctx.broker.enqueue(message, delay=int(wait * 1000) + 10)
            return
        with ctx.database.session() as session:
            claim = claim_next(session, business_id, utcnow())
            session.commit()
        if claim is None:
            ctx.limiter.refund()
            return
        place_call(ctx, claim)
    # Capacity may remain: carry on in a new message so other businesses get a turn.
    ctx.broker.enqueue(DIALER_DISPATCH.message(business_id=business_id))
