"""schedules.tick, schedules.check_due, schedules.place_call (see services/worker/schedules/)."""

from __future__ import annotations

import logging

from dramatiq.middleware import CurrentMessage

from libs.common.contracts import SCHEDULES_CHECK_DUE, SCHEDULES_PLACE_CALL, SCHEDULES_TICK
from libs.common.models import utcnow
from libs.queueops.middleware.worker_context import worker_context
from services.worker.registry import MissingRow, implements
from services.worker.schedules import placement
from services.worker.schedules.due import DueResult, process_due

logger = logging.getLogger(__name__)


def _check_due(business_id: int | None) -> DueResult:
    ctx = worker_context()
    result = process_due(
        ctx.database, ctx.broker, utcnow(), ctx.settings.schedule_grace_s, business_id
    )
    if result.queued or result.missed:
        logger.info(
            "schedules due: %d queued, %d missed, %d already recorded",
            result.queued,
            result.missed,
            result.already_recorded,
        )
    return result


@implements(SCHEDULES_TICK)
def tick(period_start: int) -> None:
    # The due check always looks at "now": a late or caught-up tick finds everything that
    # became due since the last one, and what is past the grace window is recorded missed.
    _check_due(None)


@implements(SCHEDULES_CHECK_DUE)
def check_due(business_id: int | None) -> None:
    _check_due(business_id)


@implements(SCHEDULES_PLACE_CALL)
def place_call(schedule_id: int, local_date: str) -> None:
    ctx = worker_context()
    day = placement.parse_local_date(local_date)
    try:
        placement.place(ctx, schedule_id, day, utcnow())
    except MissingRow:
        raise
    except Exception as exc:
        if _is_last_attempt():
            attempts = SCHEDULES_PLACE_CALL.max_retries + 1
            why = f"gave up after {attempts} attempts: {type(exc).__name__}: {str(exc)[:300]}"
            placement.mark_failed(ctx, schedule_id, day, why)
        raise


def _is_last_attempt() -> bool:
    message = CurrentMessage.get_current_message()
    retries = message.options.get("retries", 0) if message is not None else 0
    return int(retries) >= SCHEDULES_PLACE_CALL.max_retries
