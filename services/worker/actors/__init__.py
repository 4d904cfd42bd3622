"""Every actor module; importing this package registers their implementations."""

from services.worker.actors import (
    amd,
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

__all__ = [
    "amd",
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
