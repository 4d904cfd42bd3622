"""Every actor module; importing this package registers their implementations, and
``register_actors`` declares them on a broker."""

from __future__ import annotations

from typing import Any

import dramatiq

from services.worker.actors import (
    amd,
    call_status,
    dialer,
    inbound,
    leads,
    maintenance,
    outcomes,
    receipts,
    recordings,
    schedules,
    system,
    webhooks,
)
from services.worker.registry import IMPLEMENTATIONS, skip_missing_rows

__all__ = [
    "amd",
    "call_status",
    "dialer",
    "inbound",
    "leads",
    "maintenance",
    "outcomes",
    "receipts",
    "recordings",
    "schedules",
    "system",
    "webhooks",
]


def register_actors(broker: dramatiq.Broker) -> dict[str, dramatiq.Actor[Any, Any]]:
    """Declare every implemented contract as an actor on ``broker``."""
    actors = {}
    for name, (contract, fn) in IMPLEMENTATIONS.items():
        declare = dramatiq.actor(
            actor_name=name, queue_name=contract.queue, broker=broker, **contract.actor_options()
        )
        actors[name] = declare(skip_missing_rows(contract, fn))
    return actors
