"""maintenance.reconcile: the periodic repair pass (see services/worker/reconciler.py)."""

from __future__ import annotations

import logging

from libs.common.contracts import MAINTENANCE_RECONCILE
from libs.common.models import utcnow
from libs.queueops.middleware.worker_context import worker_context
from services.worker import reconciler
from services.worker.registry import implements

logger = logging.getLogger(__name__)


@implements(MAINTENANCE_RECONCILE)
def reconcile(period_start: int) -> None:
    """Every repair is idempotent: running the same period twice changes nothing more."""
    ctx = worker_context()
    now = utcnow()
    reconciler.fail_stalled_background_jobs(ctx, now)
    reconciler.resolve_dialing_without_call_id(ctx, now)
    if ctx.settings.twilio_account_sid:
        reconciler.check_calls_without_final_status(ctx, now)
    reconciler.reopen_daily_runs_with_queued_jobs(ctx, now)
    reconciler.complete_finished_runs(ctx, now)
    reconciler.redispatch(ctx, now)
    reconciler.requeue_pending_occurrences(ctx, now)
    reconciler.resend_inbound_followups(ctx, now)
    reconciler.resend_unapplied_callbacks(ctx, now)
    reconciler.export_gauges(ctx)
