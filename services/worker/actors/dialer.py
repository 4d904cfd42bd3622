"""dialer.dispatch: fill every free slot of a business in one pass, then place the calls."""

from __future__ import annotations

import logging
import time

from libs.campaigns.lifecycle import followups
from libs.campaigns.lifecycle.conditions import CREATE_START_LIMIT_S
from libs.campaigns.lifecycle.dialing import fill_slots
from libs.common.contracts import DIALER_DISPATCH
from libs.common.models import utcnow
from libs.queueops import coalescing
from libs.queueops.middleware.worker_context import WorkerContext, worker_context
from libs.queueops.outbox import enqueue_after_commit
from services.worker.dialer.placer import place_call
from services.worker.registry import implements

logger = logging.getLogger(__name__)

#: Calls whose CPS slot starts within this long are claimed and placed by this pass (waiting
#: in place); the rest get a dispatch delayed to their slot.
INLINE_WAIT_S = 1.0


@implements(DIALER_DISPATCH)
def dispatch(business_id: int) -> None:
    fill_and_place(worker_context(), business_id)


def fill_and_place(ctx: WorkerContext, business_id: int) -> None:
    """A dispatch pass: also run in place by ``calls.status_changed`` when the call it ended
    freed a slot (the message it would have sent, saved)."""
    limiter = ctx.limiter
    reserved = {"wanted": 0, "granted": 0, "first_wait_s": 0.0}

    def reserve(wanted: int) -> int:
        granted, first_wait_s = limiter.reserve(wanted, INLINE_WAIT_S)
        reserved.update(wanted=wanted, granted=granted, first_wait_s=first_wait_s)
        return granted

    # Before the free slots are read: a slot freed from now on sends the next dispatch
    # (libs/queueops/coalescing.py), one freed before is seen by this pass.
    coalescing.clear(followups.dispatch_mark(business_id))
    with ctx.database.session() as session:
        claims = fill_slots(session, business_id, utcnow(), reserve)
        if reserved["granted"] < reserved["wanted"]:
            # The account's CPS is the limit now: come back when its next slot is free.
            later_s = reserved["first_wait_s"] + reserved["granted"] * limiter.interval_s
            enqueue_after_commit(
                session, followups.dispatch(business_id, int(later_s * 1000) + 10), ctx.broker
            )
        session.commit()
    started = time.monotonic()
    for k, claim in enumerate(claims):
        pause = started + reserved["first_wait_s"] + k * limiter.interval_s - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        if time.monotonic() - started > CREATE_START_LIMIT_S:
            # Too late to be sure the reconciler does not place it too: it is left to it.
            logger.warning("job %s: not placed within %g s of its claim; left to the "
                           "reconciler", claim.job_id, CREATE_START_LIMIT_S)  # fmt: skip
            continue
        place_call(ctx, claim)
