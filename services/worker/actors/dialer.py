"""dialer.dispatch: fill every free slot of a business in one pass, then place the calls."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from libs.campaigns.lifecycle import followups
from libs.campaigns.lifecycle.conditions import CREATE_START_LIMIT_S
from libs.campaigns.lifecycle.dialing import Claim, fill_slots
from libs.common.contracts import DIALER_DISPATCH
from libs.common.models import utcnow
from libs.queueops import coalescing
from libs.queueops.middleware.worker_context import (
    PLACING_THREADS,
    WorkerContext,
    worker_context,
)
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
    if not claims:
        return
    started = time.monotonic()
    schedule = [started + reserved["first_wait_s"] + k * limiter.interval_s
                for k in range(len(claims))]  # fmt: skip
    if len(claims) == 1:
        _place_at(ctx, claims[0], schedule[0], started)
        return
    # The calls of one pass are placed side by side, each at its CPS slot: placed in turn, the
    # third call of a pass waited for two provider round trips and two stores of the call id
    # (the largest part of "claim -> provider create" in bench-dialer's dispatch gap). The pass
    # waits for them all, so its message is acknowledged after its calls are placed, as before.
    futures = [_placers().submit(_place_at, ctx, claim, at, started)
               for claim, at in zip(claims, schedule, strict=True)]  # fmt: skip
    for future in futures:
        future.result()


_pool: list[ThreadPoolExecutor] = []
_pool_lock = threading.Lock()


def _placers() -> ThreadPoolExecutor:
    # PLACING_THREADS, shared by the process's dispatch passes; each may hold a database
    # connection to store a call id (the worker context's pool counts them). Made on first
    # use, in the worker process that uses it (never before a fork).
    with _pool_lock:
        if not _pool:
            _pool.append(
                ThreadPoolExecutor(max_workers=PLACING_THREADS, thread_name_prefix="placer")
            )
        return _pool[0]


def _place_at(ctx: WorkerContext, claim: Claim, at: float, started: float) -> None:
    pause = at - time.monotonic()
    if pause > 0:
        time.sleep(pause)
    if time.monotonic() - started > CREATE_START_LIMIT_S:
        # Too late to be sure the reconciler does not place it too: it is left to it.
        logger.warning("job %s: not placed within %g s of its claim; left to the "
                       "reconciler", claim.job_id, CREATE_START_LIMIT_S)  # fmt: skip
        return
    place_call(ctx, claim)
