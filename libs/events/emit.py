"""Emitting events: the one way a change tells a business's endpoints about itself.

``emit`` runs inside the producer's transaction: it writes the event and one pending delivery
per enabled endpoint of the business that subscribes to its type, and asks for one
``webhooks.deliver`` message per delivery after the commit. So an event exists if and only if
the change that caused it committed, and a delivery whose message is lost (broker down at the
commit, worker killed) is still sent: ``webhooks.sweep`` finds it due and sends it again.

An event nobody subscribes to is not stored: emitting costs one indexed SELECT of the
business's endpoints when it has none.

The call lifecycle emits call.completed and run.completed in the transactions that make those
transitions (libs/campaigns/lifecycle/customer_events.py), so each is emitted once per transition:
an event has no natural key, so emitting twice sends twice.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import dramatiq
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from libs.common.contracts import WEBHOOKS_DELIVER
from libs.common.models import (
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    utcnow,
)
from libs.events.catalogue import EVENT_TYPES, iso
from libs.queueops.outbox import Outgoing, enqueue_after_commit

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class UnknownEventType(ValueError):
    pass


def new_event_id() -> str:
    """``evt_`` and 26 characters: 48 bits of milliseconds then 80 random bits, in Crockford
    base32 (a ULID), so ids sort by time and never repeat."""
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_CROCKFORD[digit])
    return "evt_" + "".join(reversed(chars))


def envelope(event_id: str, event_type: str, at: datetime, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": event_id, "type": event_type, "timestamp": iso(at), "data": data}


def subscribers(session: Session, business_id: int, event_type: str) -> list[WebhookEndpoint]:
    endpoints = session.scalars(
        select(WebhookEndpoint).where(
            WebhookEndpoint.business_id == business_id, WebhookEndpoint.enabled.is_(True)
        )
    )
    return [endpoint for endpoint in endpoints if endpoint.wants(event_type)]


def emit_many(
    session: Session,
    business_id: int,
    event_type: str,
    datas: Iterable[dict[str, Any]],
    broker: dramatiq.Broker | None = None,
) -> list[str]:
    """One event per item of ``datas``; returns their ids ([] when nobody subscribes).

    The caller commits. ``broker``: where the messages go (the process's global broker when
    None; workers pass their own)."""
    kind = EVENT_TYPES.get(event_type)
    if kind is None:
        raise UnknownEventType(f"{event_type} is not in the catalogue")
    datas = list(datas)
    expected = set(kind.data_schema["properties"])
    for data in datas:
        if set(data) != expected:
            # A producer out of step with the catalogue: fail its transaction, loudly.
            raise ValueError(f"{event_type} data has fields {sorted(data)}, not {sorted(expected)}")
    endpoints = subscribers(session, business_id, event_type) if datas else []
    if not endpoints:
        return []
    now = utcnow()
    events = []
    for data in datas:
        event_id = new_event_id()
        payload = envelope(event_id, event_type, now, data)
        events.append({"public_id": event_id, "business_id": business_id, "type": event_type,
                       "payload": payload, "created_at": now})  # fmt: skip
    event_ids = session.scalars(
        insert(WebhookEvent).returning(WebhookEvent.id, sort_by_parameter_order=True), events
    ).all()
    rows = [
        {"event_id": event_id, "endpoint_id": endpoint.id, "business_id": business_id,
         "event_type": event_type, "status": DeliveryStatus.PENDING.value,
         "next_attempt_at": now}
        for event_id in event_ids
        for endpoint in endpoints
    ]  # fmt: skip
    delivery_ids = session.scalars(
        insert(WebhookDelivery).returning(WebhookDelivery.id, sort_by_parameter_order=True), rows
    ).all()
    for delivery_id in delivery_ids:
        send_delivery_after_commit(session, delivery_id, broker)
    return [str(event["public_id"]) for event in events]


def emit(
    session: Session,
    business_id: int,
    event_type: str,
    data: dict[str, Any],
    broker: dramatiq.Broker | None = None,
) -> str | None:
    """One event; its id, or None when no endpoint of the business subscribes to the type."""
    ids = emit_many(session, business_id, event_type, [data], broker)
    return ids[0] if ids else None


def send_delivery_after_commit(
    session: Session, delivery_id: int, broker: dramatiq.Broker | None = None
) -> None:
    """Ask for the delivery's message once ``session`` commits. Repairable: a broker that
    refuses it is logged, not raised (the change committed), and the sweep sends it."""
    message = WEBHOOKS_DELIVER.message(delivery_id=delivery_id)
    enqueue_after_commit(session, Outgoing(message, repairable=True), broker)
