"""The operations API: queues, workers and dead-lettered messages, for operator tokens only."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import redis
from flask import Blueprint, Response, current_app

from libs.common.contracts import BY_NAME, QUEUES
from libs.common.redis_client import shared_redis
from libs.common.settings import Settings
from libs.queueops import dead_letters, heartbeats
from libs.queueops.broker_adapter import BrokerAdapter, shared_adapter
from libs.queueops.queue_health import QueueUnavailable, unavailable
from libs.web.errors import ApiError, error_response
from libs.web.validation import bad_request
from services.api.admin.schemas import (
    FailedBulkRetried,
    FailedFilter,
    FailedMessage,
    FailedMessagePage,
    FailedQuery,
    FailedRetried,
    QueuesReport,
    Skipped,
    WorkersReport,
)
from services.api.spec import answers, api

blueprint = Blueprint("admin", __name__, url_prefix="/admin")

#: Reads here may walk a few thousand dead letters: longer than the 1 s broker check.
REDIS_TIMEOUT_S = 5.0
#: At most this many skipped messages are itemized in a bulk retry's answer.
MAX_SKIPPED_LISTED = 100
_NO_SUCH_MESSAGE = (404, "no dead-lettered message with this id (retried, deleted or expired)")
_NOT_RETRYABLE = (
    409,
    "not_retryable: its actor has no contract any more, or its arguments no longer match it; "
    "details.reason says which",
)


@blueprint.errorhandler(QueueUnavailable)
def _broker_down(exc: QueueUnavailable) -> Response:
    return error_response(503, exc.code, exc.message, headers={"Retry-After": "5"})


@blueprint.errorhandler(redis.RedisError)
def _coordination_down(exc: redis.RedisError) -> Response:
    return _broker_down(unavailable(exc))


def _adapter() -> BrokerAdapter:
    """Everything here reads the broker through its adapter (libs/queueops/broker_adapter)."""
    settings: Settings = current_app.config["SETTINGS"]
    return shared_adapter(settings, REDIS_TIMEOUT_S)


def _redis() -> redis.Redis:
    """The coordination Redis, where workers write their heartbeats."""
    settings: Settings = current_app.config["SETTINGS"]
    if not settings.redis_url:
        raise QueueUnavailable("no coordination Redis is configured (REDIS_URL is unset)")
    return shared_redis(settings.redis_url, REDIS_TIMEOUT_S)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


@blueprint.get("/queues")
@api.validate(resp=answers({200: QueuesReport}, 503, auth="operator"))
def queues() -> QueuesReport:
    """Every queue: ready, in progress, delayed, dead-lettered; recent throughput."""
    adapter = _adapter()
    now = time.time()
    depths = adapter.depths(QUEUES)
    rates = adapter.throughput(QUEUES, now)
    items = []
    for queue in QUEUES:
        depth = depths[queue]
        items.append(
            {
                "name": queue,
                "ready": depth.ready,
                # Fetched by a worker and not yet acknowledged (null: the broker cannot tell).
                "in_progress": depth.in_progress,
                # Every delayed message, also those a worker holds until their time comes.
                "delayed": depth.delayed,
                "dead_lettered": depth.dead,
                "processed": rates[queue]["processed"],
                "failed": rates[queue]["failed"],
            }
        )
    return QueuesReport.model_validate({"queues": items, "checked_at": _iso(now)})


@blueprint.get("/workers")
@api.validate(resp=answers({200: (WorkersReport, "oldest beat first")}, 503, auth="operator"))
def workers() -> WorkersReport:
    """Live worker processes, from their heartbeats."""
    settings: Settings = current_app.config["SETTINGS"]
    now = time.time()
    # Dead workers' keys expire (WORKER_HEARTBEAT_TTL_S); a worker that missed two beats is
    # still listed but flagged, since it may be stuck rather than gone.
    stale_after_s = 2 * settings.worker_heartbeat_interval_s
    items = []
    for beat in heartbeats.live_workers(_redis()):
        age = beat.age_s(now)
        items.append(
            {
                "host": beat.host,
                "pid": beat.pid,
                "queues": beat.queues,
                "started_at": _iso(beat.started_at),
                "last_beat_at": _iso(beat.beat_at),
                "heartbeat_age_s": round(age, 3),
                "stale": age > stale_after_s,
            }
        )
    return WorkersReport.model_validate(
        {"workers": items, "count": len(items), "stale_after_s": stale_after_s}
    )


@blueprint.get("/failed")
@api.validate(resp=answers({200: FailedMessagePage}, 503, auth="operator"))
def failed(query: FailedQuery) -> FailedMessagePage:
    """Dead-lettered messages across queues, newest first."""
    after = _cursor(query.cursor)
    entries, next_position = _adapter().dead_letters(
        [query.queue] if query.queue else QUEUES,
        actor=query.actor or None,
        limit=query.limit,
        after=after,
    )
    return FailedMessagePage(
        items=[FailedMessage.model_validate(entry.to_dict(BY_NAME)) for entry in entries],
        limit=query.limit,
        next_cursor=next_position.encode() if next_position else None,
    )


def _cursor(raw: str | None) -> dead_letters.Position | None:
    if not raw:
        return None
    try:
        position = dead_letters.Position.decode(raw)
    except ValueError:
        raise bad_request("cursor must be a next_cursor from a previous page") from None
    if position.queue not in QUEUES:
        raise bad_request("cursor must be a next_cursor from a previous page")
    return position


def _dead_letter_or_404(adapter: BrokerAdapter, dead_letter_id: str) -> dead_letters.DeadLetter:
    entry = adapter.find(dead_letter_id, QUEUES)
    if entry is None:
        raise _gone(dead_letter_id)
    return entry


def _gone(dead_letter_id: str) -> ApiError:
    message = f"no dead-lettered message {dead_letter_id!r} (retried, deleted or expired)"
    return ApiError(404, "not_found", message)


@blueprint.post("/failed/<dead_letter_id>/retry")
@api.validate(
    resp=answers(
        {202: (FailedRetried, "enqueued")}, _NO_SUCH_MESSAGE, _NOT_RETRYABLE, 503, auth="operator"
    ),
    path_parameter_descriptions={"dead_letter_id": "a FailedMessage's id"},
)
def retry_one(dead_letter_id: str) -> tuple[FailedRetried, int]:
    """Enqueue a dead-lettered message again, with its whole retry budget.

    Same message id and arguments. Exactly once even when called concurrently: the losers
    get 404."""
    adapter = _adapter()
    entry = _dead_letter_or_404(adapter, dead_letter_id)
    problem = entry.problem(BY_NAME)
    if problem is not None or entry.message is None:
        raise ApiError(
            409,
            "not_retryable",
            f"message {dead_letter_id!r} is not retried: {problem}",
            details={"id": entry.id, "actor": entry.actor, "reason": problem},
        )
    contract = BY_NAME[entry.message.actor_name]
    if not adapter.retry(entry, contract):
        raise _gone(dead_letter_id)  # a concurrent retry or delete took it first
    retried = FailedRetried(
        id=entry.id, message_id=entry.message.message_id, actor=entry.actor, queue=contract.queue
    )
    return retried, 202


@blueprint.delete("/failed/<dead_letter_id>")
@api.validate(
    resp=answers({204: "deleted"}, _NO_SUCH_MESSAGE, 503, auth="operator"),
    path_parameter_descriptions={"dead_letter_id": "a FailedMessage's id"},
)
def delete_one(dead_letter_id: str) -> tuple[str, int]:
    """Drop a dead-lettered message for good."""
    adapter = _adapter()
    if not adapter.delete(_dead_letter_or_404(adapter, dead_letter_id)):
        raise _gone(dead_letter_id)
    return "", 204


@blueprint.post("/failed/retry")
@api.validate(
    resp=answers({200: (FailedBulkRetried, "how many were enqueued")}, 503, auth="operator")
)
def retry_many(json: FailedFilter) -> FailedBulkRetried:
    """Retry every dead-lettered message matching a filter (actor, queue).

    Messages that cannot be retried stay and are reported in skipped."""
    result = _adapter().retry_matching(
        [json.queue] if json.queue else QUEUES, actor=json.actor, contracts=BY_NAME
    )
    skipped = [
        Skipped(id=entry.id, queue=entry.queue, actor=entry.actor, reason=reason)
        for entry, reason in result.skipped[:MAX_SKIPPED_LISTED]
    ]
    return FailedBulkRetried(
        retried=result.retried, skipped=skipped, skipped_total=len(result.skipped)
    )
