"""Enqueue after commit: messages requested inside a transaction leave only if it commits."""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
from sqlalchemy import event
from sqlalchemy.orm import Session

from libs.common.queue_health import ENQUEUE_ERRORS, QueueUnavailable

logger = logging.getLogger(__name__)

_PENDING = "switchboard.pending_messages"


def enqueue_after_commit(
    session: Session, message: dramatiq.Message[Any], broker: dramatiq.Broker | None = None
) -> None:
    """Hold ``message`` until ``session`` commits; drop it if the session rolls back."""
    if not session.in_transaction():
        # Bind the message to a transaction even before any SQL ran, so a rollback drops it.
        session.begin()
    session.info.setdefault(_PENDING, []).append((broker, message))


def pending_messages(session: Session) -> list[dramatiq.Message[Any]]:
    return [message for _, message in session.info.get(_PENDING, [])]


@event.listens_for(Session, "after_commit")
def _send_pending(session: Session) -> None:
    pending = session.info.pop(_PENDING, [])
    for index, (broker, message) in enumerate(pending):
        try:
            (broker or dramatiq.get_broker()).enqueue(message)
        except ENQUEUE_ERRORS as exc:
            # The rows are committed; the message is not. Callers compensate (see the ping
            # endpoint) and the reconciler repairs what a crash here would leave behind.
            unsent = [m.actor_name for _, m in pending[index:]]
            logger.error("broker refused messages after commit: %s", unsent)
            raise QueueUnavailable(
                "the job queue became unreachable; the work was not queued"
            ) from exc


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction: Any) -> None:
    if previous_transaction.parent is None:
        session.info.pop(_PENDING, None)
