"""The due check: record each due schedule's occurrence for its local date once, queue its call,
and move ``next_due_at`` on.

Cost follows the due schedules, not the table: the query walks the ``next_due_at`` index from
its start and stops at ``now``. Rows are locked with SKIP LOCKED, so overlapping ticks (a
manual trigger during a periodic tick) split the work instead of doing it twice; and the
occurrence's unique (schedule, local date) key makes a second pass over the same day a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import dramatiq
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from libs.common import metrics
from libs.common.contracts import SCHEDULES_PLACE_CALL
from libs.common.db import Database, dialect_insert
from libs.common.models import OccurrenceStatus, Schedule, ScheduleOccurrence
from libs.queueops.outbox import enqueue_after_commit
from libs.telephony.schedules.occurrences import next_occurrence

#: Schedules handled per transaction: keeps locks and memory bounded however many are due.
BATCH_SIZE = 500


@dataclass
class DueResult:
    queued: int = 0
    missed: int = 0
    #: Due schedules whose occurrence for that date already existed (a second tick, an edit).
    already_recorded: int = 0
    #: The (schedule id, local date) pairs queued, in order.
    placed: list[tuple[int, str]] = field(default_factory=list)


def process_due(
    database: Database,
    broker: dramatiq.Broker,
    now: datetime,
    grace_s: float,
    business_id: int | None = None,
    batch_size: int = BATCH_SIZE,
) -> DueResult:
    result = DueResult()
    while _process_batch(database, broker, now, grace_s, business_id, batch_size, result):
        pass
    return result


def _process_batch(
    database: Database,
    broker: dramatiq.Broker,
    now: datetime,
    grace_s: float,
    business_id: int | None,
    batch_size: int,
    result: DueResult,
) -> bool:
    """One transaction over up to ``batch_size`` due schedules; False when none was due."""
    grace = timedelta(seconds=grace_s)
    with database.session() as session:
        query = select(Schedule).where(Schedule.next_due_at <= now)
        if business_id is not None:
            query = query.where(Schedule.business_id == business_id)
        schedules = list(
            session.scalars(
                query.order_by(Schedule.next_due_at)
                .limit(batch_size)
                .with_for_update(skip_locked=True)
            )
        )
        if not schedules:
            return False
        rows: list[dict[str, Any]] = []
        advances: list[dict[str, Any]] = []
        for schedule in schedules:
            due_at = schedule.next_due_at
            assert due_at is not None
            late = now - due_at > grace
            rows.append(
                {
                    "schedule_id": schedule.id,
                    "local_date": due_at.astimezone(ZoneInfo(schedule.timezone)).date(),
                    "due_at": due_at,
                    "status": OccurrenceStatus.MISSED if late else OccurrenceStatus.PENDING,
                    "error_message": (
                        f"found due {int((now - due_at).total_seconds())} s late, "
                        f"past the {grace_s:g} s grace window"
                        if late
                        else None
                    ),
                }
            )
            # After a long outage, skip the days that are past the grace window anyway.
            found = next_occurrence(
                max(due_at, now - grace),
                schedule.local_time,
                schedule.timezone,
                schedule.days_mask,
            )
            advances.append({"id": schedule.id, "next_due_at": found[0] if found else None})
        inserted = _insert_new_occurrences(session, rows)
        session.execute(update(Schedule), advances)
        for row in rows:
            key = (row["schedule_id"], row["local_date"])
            if key not in inserted:
                result.already_recorded += 1
            elif row["status"] is OccurrenceStatus.MISSED:
                result.missed += 1
                metrics.SCHEDULE_OCCURRENCES.labels("missed").inc()
            else:
                local_date = row["local_date"].isoformat()
                message = SCHEDULES_PLACE_CALL.message(
                    schedule_id=row["schedule_id"], local_date=local_date
                )
                enqueue_after_commit(session, message, broker)
                result.queued += 1
                result.placed.append((row["schedule_id"], local_date))
                metrics.SCHEDULE_OCCURRENCES.labels("queued").inc()
                metrics.SCHEDULE_FIRE_LAG.observe((now - row["due_at"]).total_seconds())
        session.commit()
    return len(schedules) == batch_size


def _insert_new_occurrences(session: Session, rows: list[dict[str, Any]]) -> set[tuple[int, Any]]:
    """INSERT … ON CONFLICT DO NOTHING in one statement; the keys that were new."""
    table = ScheduleOccurrence.__table__
    statement = (
        dialect_insert(session)(table)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["schedule_id", "local_date"])
        .returning(table.c.schedule_id, table.c.local_date)
    )
    return {(sid, day) for sid, day in session.execute(statement)}
