"""Asking the provider whether an attempt's call exists: the other half of exactly-once.

A worker that dies between claiming an attempt and storing the provider's call id leaves the
dialer not knowing whether the call was created. The status-callback URL names the job and
attempt, so a created call usually announces itself within a second; when none did, the
reconciler asks here: Twilio's Calls list filtered by ``To``, ``From`` and start time.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from libs.queueops.middleware.worker_context import WorkerContext

#: Calls that started this long before the attempt's claim are looked at too (the provider's
#: clock is not ours); those already known as another attempt's call are left out.
CLOCK_SKEW = timedelta(seconds=60)


def find_call(
    ctx: WorkerContext, to: str, claimed_at: datetime, known_sids: Collection[str]
) -> Any | None:
    """The provider's call to ``to`` from our number placed since ``claimed_at`` and not
    already another attempt's, or None. A call still queued at the provider has no start
    time yet, so queued calls to ``to`` are asked for as well."""
    calls = ctx.twilio.calls
    from_ = ctx.settings.twilio_from_number
    started = calls.list(to=to, from_=from_, start_time_after=claimed_at - CLOCK_SKEW, limit=20)
    queued = [] if started else calls.list(to=to, from_=from_, status="queued", limit=20)
    candidates = [call for call in [*started, *queued] if call.sid not in known_sids]
    return candidates[0] if candidates else None
