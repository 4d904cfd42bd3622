"""The operations API's shapes: queues, workers, dead-lettered messages and their retries."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field, WithJsonSchema

from libs.common.contracts import QUEUES
from services.api.schemas import Body, Query, Shape, optional

#: Contract names are short (system.ping); a filter longer than this cannot match one.
MAX_ACTOR_LENGTH = 200


def _known_queue(name: str) -> str:
    if name not in QUEUES:
        raise ValueError(f"queue must be one of: {', '.join(QUEUES)}")
    return name


#: One of the contracts' queues (libs/common/contracts), listed as the schema's enum.
QueueName = Annotated[
    str, AfterValidator(_known_queue), WithJsonSchema({"type": "string", "enum": list(QUEUES)})
]
Count = int
Time = str  # ISO 8601, UTC, milliseconds


class Windows(Shape):
    """Over the last 1, 5 and 15 minutes, from per-minute counts in Redis."""

    one: Count = Field(alias="1m", ge=0)
    five: Count = Field(alias="5m", ge=0)
    fifteen: Count = Field(alias="15m", ge=0)


class QueueStats(Shape):
    name: QueueName
    ready: Count = Field(ge=0, description="waiting for a worker")
    in_progress: Count | None = Field(
        ge=0,
        description="fetched by a worker, not yet finished; null when the broker cannot tell "
        "(RabbitMQ without its management API)",
    )
    delayed: Count = Field(ge=0, description="waiting for a retry backoff or a set time")
    dead_lettered: Count = Field(ge=0, description="gave up on; see /api/admin/failed")
    processed: Windows = Field(description="attempts that ran to an end (ok or not)")
    failed: Windows = Field(description="attempts that raised (retried or not)")


class QueuesReport(Shape):
    queues: list[QueueStats]
    checked_at: Time


class WorkerHeartbeat(Shape):
    host: str
    pid: int
    queues: list[str]
    started_at: Time
    last_beat_at: Time
    heartbeat_age_s: float
    stale: bool = Field(description="missed two beats: maybe stuck; gone workers are not listed")


class WorkersReport(Shape):
    workers: list[WorkerHeartbeat]
    count: Count
    stale_after_s: float


class FailedQuery(Query):
    queue: QueueName | None = None
    actor: str | None = Field(
        None, max_length=MAX_ACTOR_LENGTH, description="a contract name, e.g. system.ping"
    )
    limit: int = Field(50, ge=1, le=200)
    cursor: str | None = Field(None, max_length=400, description="next_cursor of the last page")


class FailedMessage(Shape):
    id: str = Field(description="this dead letter's id, for retry/delete")
    message_id: str | None = Field(
        description="the Dramatiq message id (kept by a retry; seen in worker logs)"
    )
    queue: QueueName
    actor: str | None
    args: list[Any]
    kwargs: dict[str, Any]
    error: str | None = Field(description="the final exception, e.g. 'RuntimeError: boom'")
    traceback: str | None
    retries: Count = Field(ge=0, description="retries used before it was dead-lettered")
    dead_lettered_at: Time
    enqueued_at: Time | None
    request_id: str | None
    retryable: bool
    reason: str | None = Field(
        description="why it cannot be retried (e.g. its actor has no contract any more)"
    )


class FailedMessagePage(Shape):
    items: list[FailedMessage]
    limit: int
    next_cursor: str | None = Field(
        description="pass as cursor for the next (older) page; null on the last"
    )


class FailedRetried(Shape):
    id: str
    message_id: str
    actor: str | None
    queue: QueueName = Field(description="where it was enqueued")


class FailedFilter(Body):
    """{} retries every dead-lettered message."""

    actor: str | None = optional(
        min_length=1, max_length=MAX_ACTOR_LENGTH, description="a contract name"
    )
    queue: QueueName | None = optional()


class Skipped(Shape):
    id: str
    queue: QueueName
    actor: str | None
    reason: str


class FailedBulkRetried(Shape):
    retried: Count
    skipped: list[Skipped] = Field(description="matching messages left dead-lettered (100 first)")
    skipped_total: Count
