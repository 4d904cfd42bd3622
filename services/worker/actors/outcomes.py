"""outcomes.apply, outcomes.price and outcomes.sweep: the disposition, lead recycling and
price of ended calls."""

from __future__ import annotations

import logging

from libs.campaigns.outcomes import analytics, pricing, recordings
from libs.campaigns.outcomes.apply import apply_outcome, unapplied_calls
from libs.common import metrics
from libs.common.contracts import OUTCOMES_APPLY, OUTCOMES_PRICE, OUTCOMES_SWEEP, RECORDINGS_FETCH
from libs.common.models import Call, utcnow
from libs.queueops.middleware.worker_context import worker_context
from services.worker.registry import MissingRow, implements

logger = logging.getLogger(__name__)


#: How many times, and how far apart, the provider is asked for a price it does not have yet
#: (Twilio fills it in some time after the call).
PRICE_ATTEMPTS = 6
PRICE_RETRY_MS = 30_000


@implements(OUTCOMES_APPLY)
def apply(call_id: int) -> None:
    """Idempotent: a redelivered message finds the outcome applied and changes nothing."""
    ctx = worker_context()
    with ctx.database.session() as session:
        result = apply_outcome(session, call_id, utcnow())
        call = session.get(Call, call_id)  # loaded (and locked) by apply_outcome: no query
        wants_price = call is not None and analytics.needs_price(call)
        session.commit()
    if result is None:
        logger.info("outcomes.apply: call %d not found or not ended", call_id)
    elif wants_price and ctx.settings.twilio_account_sid:
        ctx.broker.enqueue(OUTCOMES_PRICE.message(call_id=call_id, attempt=1))


@implements(OUTCOMES_PRICE)
def price(call_id: int, attempt: int) -> None:
    """Idempotent: a call with its price is not asked about again. Prices the calls placed
    around this one as well, in one provider request (libs/campaigns/outcomes/pricing.py)."""
    ctx = worker_context()
    with ctx.database.session() as session:
        call = session.get(Call, call_id)
        if call is None:
            raise MissingRow(f"no call {call_id}")
        sid = call.provider_call_sid
        if call.price_micros is not None or not sid:
            return
        batch = pricing.unpriced_near(session, call)
    prices = pricing.fetch_prices(ctx.twilio, batch)
    if prices:
        with ctx.database.session() as session:
            pricing.store_prices(session, prices)
            session.commit()
        for micros, unit in prices.values():
            metrics.CALL_COST.labels(unit).inc(micros / 1_000_000)
    if sid not in prices and attempt < PRICE_ATTEMPTS:  # not priced by the provider yet
        message = OUTCOMES_PRICE.message(call_id=call_id, attempt=attempt + 1)
        ctx.broker.enqueue(message, delay=PRICE_RETRY_MS * attempt)


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
