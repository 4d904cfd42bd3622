"""Contracts of event webhooks: one delivery attempt, and the periodic sweep."""

from libs.common.contracts.base import ActorContract

WEBHOOKS_DELIVER = ActorContract(
    name="webhooks.deliver",
    queue="webhooks",
    params=("delivery_id",),
    # The delivery's own retries (hours apart) are rows, not message retries: these only
    # cover a database that did not answer. A lost message is re-sent by the sweep.
    max_retries=3,
    min_backoff_ms=1_000,
    max_backoff_ms=30_000,
    # Above two request timeouts (WEBHOOK_TIMEOUT_S is at most 20 s), below the claim's lease.
    time_limit_ms=60_000,
    description="Send one event to one endpoint if it is due, and record the attempt.",
)

WEBHOOKS_SWEEP = ActorContract(
    name="webhooks.sweep",
    queue="maintenance",
    params=("period_start",),
    # The next period does whatever this one did not.
    max_retries=0,
    time_limit_ms=120_000,
    max_age_ms=600_000,
    description="Send due deliveries whose message was lost; close abandoned attempts; "
    "delete events past their retention; export the backlog gauges.",
)
