"""Call prices from the provider, many calls per request.

Twilio fills a call's ``price`` some time after it ends, and a call's status callback does not
carry it, so prices are read back. One ``GET /Calls/{sid}`` per call costs a provider request
and a few milliseconds of worker CPU per call (docs/benchmarks.md, dialer); the Calls list
filtered by start time and status returns up to a thousand calls, prices included, in one
request. So one message prices every unpriced call, and one waits at a time: the end of an
answered call sends it unless one is waiting already (``lifecycle.followups.price``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.orm import Session

from libs.campaigns.outcomes.analytics import price_micros
from libs.common.models import Call
from libs.common.models.call import UNPRICED

#: A call's price is asked for until this long after it ended (Twilio's comes within a
#: minute or two; a call it never prices is not asked about forever).
ASK_FOR = timedelta(minutes=10)
#: The provider's largest page; one request per batch.
PAGE = 1000
#: A call's start at the provider is when it was dialed, a little after its row was created.
START_SLACK = timedelta(minutes=1)


def unpriced(session: Session, now: datetime) -> list[tuple[int, str, datetime]]:
    """(id, provider sid, created) of the answered outbound calls of the account that ended
    in the last ``ASK_FOR`` and whose price is not known, oldest first."""
    rows = session.execute(
        select(Call.id, Call.provider_call_sid, Call.created_at)
        .where(
            # The partial index's predicate, as written there (ix_calls_unpriced_ended_at).
            text(UNPRICED),
            Call.ended_at >= now - ASK_FOR,
            Call.direction == "outbound",
            Call.provider_call_sid.is_not(None),
        )
        .order_by(Call.created_at)
        .limit(PAGE)
    ).all()
    return [(int(i), str(sid), created) for i, sid, created in rows]


def fetch_prices(
    twilio: Any, calls: Sequence[tuple[int, str, datetime]]
) -> dict[str, tuple[int, str]]:
    """Provider sid → (price in positive millionths, currency) for those of ``calls`` the
    provider has priced: one Calls list request over their start times."""
    if not calls:
        return {}
    wanted = {sid for _, sid, _ in calls}
    first = min(created for _, _, created in calls) - START_SLACK
    last = max(created for _, _, created in calls) + START_SLACK
    listed = twilio.calls.list(
        status="completed", start_time_after=first, start_time_before=last, page_size=PAGE,
        limit=PAGE,
    )  # fmt: skip
    prices = {}
    for resource in listed:
        micros = price_micros(resource.price)
        if resource.sid in wanted and micros is not None:
            prices[resource.sid] = (micros, (resource.price_unit or "USD")[:3].upper())
    return prices


_STORE = (
    update(Call)
    .where(Call.provider_call_sid == bindparam("sid"), Call.price_micros.is_(None))
    .values(price_micros=bindparam("micros"), price_unit=bindparam("unit"))
)


def store_prices(session: Session, prices: dict[str, tuple[int, str]]) -> None:
    """Each price once (a call priced meanwhile keeps its price). The caller commits."""
    if prices:
        params = [{"sid": sid, "micros": m, "unit": u} for sid, (m, u) in prices.items()]
        session.connection().execute(_STORE.execution_options(synchronize_session=False), params)
