"""outcomes.apply, outcomes.price and outcomes.sweep: the disposition, lead recycling and
price of ended calls.

outcomes.apply is sent only for calls with something to decide (the lifecycle settles the rest
when they end: ``lifecycle.status.outcome_to_decide``); outcomes.price is one coalesced message
for every call that ended meanwhile."""

from __future__ import annotations

import logging

from libs.campaigns.lifecycle import followups
from libs.campaigns.outcomes import pricing, recordings
from libs.campaigns.outcomes.apply import apply_outcome, unapplied_calls
from libs.common import metrics
from libs.common.contracts import OUTCOMES_APPLY, OUTCOMES_PRICE, OUTCOMES_SWEEP, RECORDINGS_FETCH
from libs.common.models import utcnow
from libs.queueops import coalescing
from libs.queueops.middleware.worker_context import worker_context
from libs.queueops.outbox import send_committed
from services.worker.registry import implements

logger = logging.getLogger(__name__)


#: How long until the provider is asked again when some calls have no price yet.
PRICE_RETRY_MS = 30_000


@implements(OUTCOMES_APPLY)
def apply(call_id: int) -> None:
    """Idempotent: a redelivered message finds the outcome applied and changes nothing."""
    ctx = worker_context()
    with ctx.database.session() as session:
        result = apply_outcome(session, call_id, utcnow())
        session.commit()
    if result is None:
        logger.info("outcomes.apply: call %d not found or not ended", call_id)


@implements(OUTCOMES_PRICE)
def price() -> None:
    """Every answered call whose price is not known, in one provider request
    (libs/campaigns/outcomes/pricing.py). Idempotent: a priced call is not asked about again."""
    ctx = worker_context()
    # Before reading: a call that ends from now on sends the next message (coalescing.py).
    coalescing.clear(followups.PRICE_MARK)
    if not ctx.settings.twilio_account_sid:
        return
    with ctx.database.session() as session:
        batch = pricing.unpriced(session, utcnow())
    prices = pricing.fetch_prices(ctx.twilio, batch)
    if prices:
        with ctx.database.session() as session:
            pricing.store_prices(session, prices)
            session.commit()
        for micros, unit in prices.values():
            metrics.CALL_COST.labels(unit).inc(micros / 1_000_000)
    if len(prices) < len(batch):  # not priced by the provider yet: ask again later
        send_committed([followups.price(PRICE_RETRY_MS)], ctx.broker)


@implements(OUTCOMES_SWEEP)
def sweep(period_start: int) -> None:
    """Ended calls whose outcomes.apply message was lost (or never sent), each in its own
    transaction so one bad row does not hold up the rest; recordings whose fetch was lost."""
    ctx = worker_context()
    now = utcnow()
    with ctx.database.session() as session:
        call_ids = unapplied_calls(session, now)
        unfetched = recordings.unfetched(session, now)
        unpriced = bool(ctx.settings.twilio_account_sid and pricing.unpriced(session, now))
    if unpriced:  # a price message lost: coalesced, so no second one while one waits
        send_committed([followups.price()], ctx.broker)
    for call_id in unfetched:  # fetching is idempotent: a slow fetch fetched twice is harmless
        ctx.broker.enqueue(RECORDINGS_FETCH.message(call_id=call_id))
    for call_id in call_ids:
        with ctx.database.session() as session:
            apply_outcome(session, call_id, now)
            session.commit()
    if call_ids:
        logger.info("outcomes.sweep: applied %d call outcomes", len(call_ids))
