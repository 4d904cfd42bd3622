"""Enqueue after commit: the one way messages leave a process that writes rows.

Messages requested inside a transaction leave only if it commits, right after the commit (and
before a web request answers). A message marked ``repairable`` is one the reconciler sends
again if it is lost (every follow-up of the call lifecycle is), so a broker that refuses it
after the commit is logged, not raised; any other refusal raises ``QueueUnavailable`` for the
caller to answer 503 or compensate.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import dramatiq
from sqlalchemy import event
from sqlalchemy.orm import Session

from libs.common import metrics
from libs.queueops import coalescing
from libs.queueops.queue_health import ENQUEUE_ERRORS, QueueUnavailable

logger = logging.getLogger(__name__)

_PENDING = "switchboard.pending_messages"


@dataclass(frozen=True)
class Outgoing:
    """A message with how it leaves: after a delay, whether its loss is repaired, and the
    pending mark that keeps a second copy from being sent while one waits
    (``libs/queueops/coalescing.py``; its consumer clears the mark before reading)."""

    message: dramatiq.Message[Any]
    delay_ms: int | None = None
    repairable: bool = False
    coalesce_key: str | None = None
    coalesce_ttl_s: float = 60.0


def enqueue_after_commit(
    session: Session,
    message: dramatiq.Message[Any] | Outgoing,
    broker: dramatiq.Broker | None = None,
) -> None:
    """Hold ``message`` until ``session`` commits; drop it if the session rolls back."""
    if not session.in_transaction():
        # Bind the message to a transaction even before any SQL ran, so a rollback drops it.
        session.begin()
    outgoing = message if isinstance(message, Outgoing) else Outgoing(message)
    session.info.setdefault(_PENDING, []).append((broker, outgoing))


def pending_messages(session: Session) -> list[dramatiq.Message[Any]]:
    return [outgoing.message for _, outgoing in session.info.get(_PENDING, [])]


@event.listens_for(Session, "after_commit")
def _send_pending(session: Session) -> None:
    send(session.info.pop(_PENDING, []))


def send_committed(messages: Iterable[Outgoing], broker: dramatiq.Broker | None = None) -> None:
    """Send messages whose rows a transaction without a Session has just committed (a hot
    path written on a Connection): the same sender, called by the committer."""
    send([(broker, outgoing) for outgoing in messages])


def send(pending: Iterable[tuple[dramatiq.Broker | None, Outgoing]]) -> None:
    """The one sender: each message to its broker (the global one by default); several for
    one broker that takes them at once (``enqueue_many``: Redis) in one round trip."""
    pending = list(pending)
    marked = [outgoing for _, outgoing in pending if outgoing.coalesce_key is not None]
    claimed = coalescing.claim_many(
        [(str(outgoing.coalesce_key), outgoing.coalesce_ttl_s) for outgoing in marked]
    )
    waiting = {id(outgoing) for outgoing, sent in zip(marked, claimed, strict=True) if not sent}
    by_broker: dict[dramatiq.Broker, list[Outgoing]] = {}
    for broker, outgoing in pending:
        if id(outgoing) in waiting:
            # One is waiting and has not read yet: it sees these rows.
            metrics.MESSAGES_COALESCED.labels(outgoing.message.actor_name).inc()
            continue
        by_broker.setdefault(broker or dramatiq.get_broker(), []).append(outgoing)
    unsent: list[str] = []
    for broker, batch in by_broker.items():
        enqueue_many = getattr(broker, "enqueue_many", None)
        if enqueue_many is not None and len(batch) > 1:
            try:
                enqueue_many([(outgoing.message, outgoing.delay_ms) for outgoing in batch])
            except ENQUEUE_ERRORS as exc:  # some may have left: each is handled as refused
                unsent += _refused(batch, exc)
            continue
        for outgoing in batch:
            try:
                broker.enqueue(outgoing.message, delay=outgoing.delay_ms)
            except ENQUEUE_ERRORS as exc:  # any broker's connection error: the rows are committed
                unsent += _refused([outgoing], exc)
    if unsent:
        # Callers compensate (see the ping endpoint) or the reconciler repairs what a crash
        # here would leave behind.
        logger.error("broker refused messages after commit: %s", unsent)
        raise QueueUnavailable("the job queue became unreachable; the work was not queued")


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction: Any) -> None:
    if previous_transaction.parent is None:
        session.info.pop(_PENDING, None)


def _refused(batch: list[Outgoing], exc: BaseException) -> list[str]:
    """Log the repairable messages of ``batch`` a broker refused; the others' names."""
    unsent = []
    for outgoing in batch:
        if outgoing.coalesce_key is not None:
            # No message may wait: the next producer must send one (a second copy, should
            # this one have left after all, only finds nothing to do).
            coalescing.clear(outgoing.coalesce_key)
        name = outgoing.message.actor_name
        if outgoing.repairable:
            logger.warning("%s not sent after commit (%s); the reconciler sends it again",
                           name, type(exc).__name__)  # fmt: skip
        else:
            unsent.append(name)
    return unsent
