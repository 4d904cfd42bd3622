"""The messages a transition implies, each built in one place and returned as ``Outgoing``.

Callers hand them to ``libs.queueops.outbox`` (``enqueue_after_commit`` in a Session, or
``send_committed`` after a Connection's commit): one sender, after commit. Every follow-up is
``repairable``: the reconciler finds what a lost one would have done (``conditions``), so a
broker refusing it after the commit is logged, not raised.
"""

from __future__ import annotations

from datetime import datetime

from libs.common.contracts import (
    CALLS_STATUS_CHANGED,
    DIALER_DISPATCH,
    LEADS_CREATE_FROM_CALL,
    OUTCOMES_APPLY,
    OUTCOMES_PRICE,
    RECORDINGS_PROCESS,
)
from libs.queueops.outbox import Outgoing

#: A retry whose delay is longer than this waits for the reconciler, not a delayed message.
MAX_DELAYED_DISPATCH_S = 600


#: How long a pending mark of a dispatch lives: how long a lost dispatch can hold back the
#: next ones, the reconciler's included (a dispatch killed with its worker comes back later).
DISPATCH_MARK_TTL_S = 30.0
#: Prices are asked for this long after a call ends (Twilio fills them in a little after),
#: by one message for every call that ended meanwhile.
PRICE_DELAY_MS = 2_000
PRICE_MARK_TTL_S = 60.0
PRICE_MARK = "coalesce:outcomes.price"


def dispatch_mark(business_id: int) -> str:
    """The pending mark of a business's dispatch: cleared by ``dialer.dispatch`` before it
    reads the free slots."""
    return f"coalesce:dialer.dispatch:{business_id}"


def dispatch(business_id: int, delay_ms: int | None = None, *, repairable: bool = True) -> Outgoing:
    """``dialer.dispatch``: fill the business's free slots (the one place it is built). A
    producer that must answer 503 when it cannot be sent (starting a run) says
    ``repairable=False``, and always sends. An immediate dispatch is not sent while another
    one of the business waits (that one fills every free slot when it runs); a delayed one (a
    retry, the account's CPS) always is: its mark would hold back the dispatches before it."""
    message = DIALER_DISPATCH.message(business_id=business_id)
    key = dispatch_mark(business_id) if not delay_ms and repairable else None
    return Outgoing(
        message,
        delay_ms=delay_ms,
        repairable=repairable,
        coalesce_key=key,
        coalesce_ttl_s=DISPATCH_MARK_TTL_S,
    )


def dispatch_at(business_id: int, when: datetime, now: datetime) -> Outgoing | None:
    """A dispatch when a retry falls due; None past ``MAX_DELAYED_DISPATCH_S`` (the
    reconciler's re-dispatch picks it up then)."""
    delay_s = (when - now).total_seconds()
    if delay_s > MAX_DELAYED_DISPATCH_S:
        return None
    return dispatch(business_id, delay_ms=int(max(delay_s, 0) * 1000) or None)


def lead_from_call(call_sid: str) -> Outgoing:
    return Outgoing(LEADS_CREATE_FROM_CALL.message(call_sid=call_sid), repairable=True)


def recording(call_sid: str) -> Outgoing:
    return Outgoing(RECORDINGS_PROCESS.message(call_sid=call_sid), repairable=True)


def price(delay_ms: int = PRICE_DELAY_MS) -> Outgoing:
    """``outcomes.price``: price every answered call whose price is unknown, in one provider
    request. One waits at a time (``PRICE_MARK``), whatever number of calls end meanwhile.
    Repaired by the next call that ends, and by ``outcomes.sweep``."""
    return Outgoing(
        OUTCOMES_PRICE.message(),
        delay_ms=delay_ms,
        repairable=True,
        coalesce_key=PRICE_MARK,
        coalesce_ttl_s=delay_ms / 1000 + PRICE_MARK_TTL_S,
    )


def outcome(call_id: int) -> Outgoing:
    """``outcomes.apply`` for a call that just ended: disposition rules, lead recycling, the
    run's machine policy and compliance (libs/campaigns/outcomes). Repaired by
    ``outcomes.sweep``."""
    return Outgoing(OUTCOMES_APPLY.message(call_id=call_id), repairable=True)


def status_changed(sid: str, status: str, job_id: int | None, attempt: int | None) -> Outgoing:
    """``calls.status_changed``: apply the stored callbacks of call ``sid`` (``job_id`` and
    ``attempt`` from the callback URL, None when it named none). Repaired by the reconciler
    (``conditions.callback_unapplied``) for a call it knows."""
    message = CALLS_STATUS_CHANGED.message(sid=sid, status=status, job_id=job_id, attempt=attempt)
    return Outgoing(message, repairable=True)


def immediate_dispatch(outgoing: Outgoing) -> int | None:
    """The business of ``outgoing`` when it is an immediate, repairable ``dialer.dispatch``:
    one a worker that already runs may do in place instead of sending (the same pass, one
    message fewer); None for any other message."""
    message = outgoing.message
    if message.actor_name != DIALER_DISPATCH.name or outgoing.delay_ms or not outgoing.repairable:
        return None
    return int(message.kwargs["business_id"])
