"""Call prices from the provider, many calls per request.

Twilio fills a call's ``price`` some time after it ends, and a call's status callback does not
carry it, so prices are read back. One ``GET /Calls/{sid}`` per call costs a provider request
and a few milliseconds of worker CPU per call (docs/benchmarks.md, dialer); the Calls list
filtered by start time and status returns up to a thousand calls, prices included, in one
request. So the message for one call prices every unpriced call placed around it; the messages
of the calls it priced then find their price known and stop after one read of the row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from libs.campaigns.outcomes.analytics import price_micros
from libs.common.models import Call

#: Calls placed this close to the one asked about are priced with it.
NEIGHBOURS = timedelta(minutes=2)
#: The provider's largest page; one request per batch.
PAGE = 1000
#: A call's start at the provider is when it was dialed, a little after its row was created.
START_SLACK = timedelta(minutes=1)


def unpriced_near(session: Session, call: Call) -> list[tuple[int, str, datetime]]:
    """(id, provider sid, created) of the answered outbound calls of the account, placed near
    ``call``, whose price is not known (``call`` among them)."""
    rows = session.execute(
        select(Call.id, Call.provider_call_sid, Call.created_at)
        .where(
            Call.direction == "outbound",
            Call.status == "completed",
            Call.provider_call_sid.is_not(None),
            Call.price_micros.is_(None),
            Call.created_at.between(call.created_at - NEIGHBOURS, call.created_at + NEIGHBOURS),
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
