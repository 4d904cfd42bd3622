"""The messages a transition implies, each built in one place and returned as ``Outgoing``.

Callers hand them to ``libs.queueops.outbox`` (``enqueue_after_commit`` in a Session, or
``send_committed`` after a Connection's commit): one sender, after commit. Every follow-up is
``repairable``: the reconciler finds what a lost one would have done (``conditions``), so a
broker refusing it after the commit is logged, not raised.
"""

from __future__ import annotations

from datetime import datetime

from libs.common.contracts import (
    DIALER_DISPATCH,
    LEADS_CREATE_FROM_CALL,
    OUTCOMES_APPLY,
    RECORDINGS_PROCESS,
)
from libs.queueops.outbox import Outgoing

#: A retry whose delay is longer than this waits for the reconciler, not a delayed message.
MAX_DELAYED_DISPATCH_S = 600


def dispatch(business_id: int, delay_ms: int | None = None, *, repairable: bool = True) -> Outgoing:
    """``dialer.dispatch``: fill the business's free slots (the one place it is built). A
    producer that must answer 503 when it cannot be sent (starting a run) says
    ``repairable=False``."""
    message = DIALER_DISPATCH.message(business_id=business_id)
    return Outgoing(message, delay_ms=delay_ms, repairable=repairable)


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


def outcome(call_id: int) -> Outgoing:
    """``outcomes.apply`` for a call that just ended: disposition rules, lead recycling, the
    run's machine policy and compliance (libs/campaigns/outcomes). Repaired by
    ``outcomes.sweep``."""
    return Outgoing(OUTCOMES_APPLY.message(call_id=call_id), repairable=True)
