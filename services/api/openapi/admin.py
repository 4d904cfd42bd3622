"""OpenAPI paths and schemas of the operations API (/api/admin, operator tokens only)."""

from __future__ import annotations

from typing import Any

from libs.common.contracts import QUEUES
from services.api.admin.routes import MAX_ACTOR_LENGTH
from services.api.openapi.helpers import (
    BAD_REQUEST,
    QUEUE_DOWN,
    UNAUTHORIZED,
    body,
    error,
    json_response,
    query,
    ref,
)

_OPERATORS_ONLY = error("a business token: the operations API needs an operator token")
_NO_SUCH_MESSAGE = error("no dead-lettered message with this id (retried, deleted or expired)")
_QUEUE = {"type": "string", "enum": list(QUEUES)}
_TIME = {"type": "string", "description": "ISO 8601, UTC"}
_COUNT = {"type": "integer", "minimum": 0}
_WINDOWS = {
    "type": "object",
    "required": ["1m", "5m", "15m"],
    "properties": {"1m": _COUNT, "5m": _COUNT, "15m": _COUNT},
    "description": "over the last 1, 5 and 15 minutes, from per-minute counts in Redis",
}
_DEAD_LETTER_ID = {
    "name": "dead_letter_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "a FailedMessage's id",
}
_FILTER_DOC = "actor: a contract name such as system.ping; queue: one of the queues"

SCHEMAS: dict[str, Any] = {
    "QueueStats": {
        "type": "object",
        "required": [
            "name",
            "ready",
            "in_progress",
            "delayed",
            "dead_lettered",
            "processed",
            "failed",
        ],
        "properties": {
            "name": _QUEUE,
            "ready": {**_COUNT, "description": "waiting for a worker"},
            "in_progress": {
                **_COUNT,
                "type": ["integer", "null"],
                "description": "fetched by a worker, not yet finished; null when the broker "
                "cannot tell (RabbitMQ without its management API)",
            },
            "delayed": {**_COUNT, "description": "waiting for a retry backoff or a set time"},
            "dead_lettered": {**_COUNT, "description": "gave up on; see /api/admin/failed"},
            "processed": {**_WINDOWS, "description": "attempts that ran to an end (ok or not)"},
            "failed": {**_WINDOWS, "description": "attempts that raised (retried or not)"},
        },
    },
    "QueuesReport": {
        "type": "object",
        "required": ["queues", "checked_at"],
        "properties": {
            "queues": {"type": "array", "items": ref("QueueStats")},
            "checked_at": _TIME,
        },
    },
    "WorkerHeartbeat": {
        "type": "object",
        "required": [
            "host",
            "pid",
            "queues",
            "started_at",
            "last_beat_at",
            "heartbeat_age_s",
            "stale",
        ],
        "properties": {
            "host": {"type": "string"},
            "pid": {"type": "integer"},
            "queues": {"type": "array", "items": {"type": "string"}},
            "started_at": _TIME,
            "last_beat_at": _TIME,
            "heartbeat_age_s": {"type": "number"},
            "stale": {
                "type": "boolean",
                "description": "missed two beats: maybe stuck; gone workers are not listed",
            },
        },
    },
    "WorkersReport": {
        "type": "object",
        "required": ["workers", "count", "stale_after_s"],
        "properties": {
            "workers": {"type": "array", "items": ref("WorkerHeartbeat")},
            "count": _COUNT,
            "stale_after_s": {"type": "number"},
        },
    },
    "FailedMessage": {
        "type": "object",
        "required": [
            "id",
            "message_id",
            "queue",
            "actor",
            "args",
            "kwargs",
            "error",
            "traceback",
            "retries",
            "dead_lettered_at",
            "enqueued_at",
            "request_id",
            "retryable",
            "reason",
        ],
        "properties": {
            "id": {"type": "string", "description": "this dead letter's id, for retry/delete"},
            "message_id": {
                "type": ["string", "null"],
                "description": "the Dramatiq message id (kept by a retry; seen in worker logs)",
            },
            "queue": _QUEUE,
            "actor": {"type": ["string", "null"]},
            "args": {"type": "array"},
            "kwargs": {"type": "object"},
            "error": {
                "type": ["string", "null"],
                "description": "the final exception, e.g. 'RuntimeError: boom'",
            },
            "traceback": {"type": ["string", "null"]},
            "retries": {**_COUNT, "description": "retries used before it was dead-lettered"},
            "dead_lettered_at": _TIME,
            "enqueued_at": {**_TIME, "type": ["string", "null"]},
            "request_id": {"type": ["string", "null"]},
            "retryable": {"type": "boolean"},
            "reason": {
                "type": ["string", "null"],
                "description": "why it cannot be retried (e.g. its actor has no contract any more)",
            },
        },
    },
    "FailedMessagePage": {
        "type": "object",
        "required": ["items", "limit", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": ref("FailedMessage")},
            "limit": {"type": "integer"},
            "next_cursor": {
                "type": ["string", "null"],
                "description": "pass as cursor for the next (older) page; null on the last",
            },
        },
    },
    "FailedRetried": {
        "type": "object",
        "required": ["id", "message_id", "actor", "queue"],
        "properties": {
            "id": {"type": "string"},
            "message_id": {"type": "string"},
            "actor": {"type": "string"},
            "queue": {**_QUEUE, "description": "where it was enqueued"},
        },
    },
    "FailedFilter": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "actor": {"type": "string", "minLength": 1, "maxLength": MAX_ACTOR_LENGTH},
            "queue": _QUEUE,
        },
        "description": "{} retries every dead-lettered message",
    },
    "FailedBulkRetried": {
        "type": "object",
        "required": ["retried", "skipped", "skipped_total"],
        "properties": {
            "retried": _COUNT,
            "skipped": {
                "type": "array",
                "description": "matching messages left dead-lettered (the first 100)",
                "items": {
                    "type": "object",
                    "required": ["id", "queue", "actor", "reason"],
                    "properties": {
                        "id": {"type": "string"},
                        "queue": _QUEUE,
                        "actor": {"type": ["string", "null"]},
                        "reason": {"type": "string"},
                    },
                },
            },
            "skipped_total": _COUNT,
        },
    },
}

PATHS: dict[str, dict[str, Any]] = {
    "/api/admin/queues": {
        "get": {
            "summary": "Every queue: ready, in progress, delayed, dead-lettered; recent throughput",
            "responses": {
                "200": json_response(ref("QueuesReport"), "one entry per queue"),
                "401": UNAUTHORIZED,
                "403": _OPERATORS_ONLY,
                "503": QUEUE_DOWN,
            },
        }
    },
    "/api/admin/workers": {
        "get": {
            "summary": "Live worker processes, from their heartbeats",
            "responses": {
                "200": json_response(ref("WorkersReport"), "oldest beat first"),
                "401": UNAUTHORIZED,
                "403": _OPERATORS_ONLY,
                "503": QUEUE_DOWN,
            },
        }
    },
    "/api/admin/failed": {
        "get": {
            "summary": "Dead-lettered messages across queues, newest first",
            "parameters": [
                query("queue", _QUEUE),
                query(
                    "actor",
                    {"type": "string", "maxLength": MAX_ACTOR_LENGTH},
                    "a contract name, e.g. system.ping",
                ),
                query("limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}),
                query("cursor", {"type": "string"}, "next_cursor of the previous page"),
            ],
            "responses": {
                "200": json_response(ref("FailedMessagePage"), "a page"),
                "400": BAD_REQUEST,
                "401": UNAUTHORIZED,
                "403": _OPERATORS_ONLY,
                "503": QUEUE_DOWN,
            },
        }
    },
    "/api/admin/failed/{dead_letter_id}/retry": {
        "post": {
            "summary": "Enqueue a dead-lettered message again, with its whole retry budget",
            "description": "Same message id and arguments. Exactly once even when called "
            "concurrently: the losers get 404.",
            "parameters": [_DEAD_LETTER_ID],
            "responses": {
                "202": json_response(ref("FailedRetried"), "enqueued"),
                "401": UNAUTHORIZED,
                "403": _OPERATORS_ONLY,
                "404": _NO_SUCH_MESSAGE,
                "409": error(
                    "not_retryable: its actor has no contract any more, or its arguments no "
                    "longer match it; details.reason says which"
                ),
                "503": QUEUE_DOWN,
            },
        }
    },
    "/api/admin/failed/{dead_letter_id}": {
        "delete": {
            "summary": "Drop a dead-lettered message for good",
            "parameters": [_DEAD_LETTER_ID],
            "responses": {
                "204": {"description": "deleted"},
                "401": UNAUTHORIZED,
                "403": _OPERATORS_ONLY,
                "404": _NO_SUCH_MESSAGE,
                "503": QUEUE_DOWN,
            },
        }
    },
    "/api/admin/failed/retry": {
        "post": {
            "summary": "Retry every dead-lettered message matching a filter",
            "description": _FILTER_DOC + ". Messages that cannot be retried stay and are "
            "reported in skipped.",
            "requestBody": body(ref("FailedFilter")),
            "responses": {
                "200": json_response(ref("FailedBulkRetried"), "how many were enqueued"),
                "400": BAD_REQUEST,
                "401": UNAUTHORIZED,
                "403": _OPERATORS_ONLY,
                "503": QUEUE_DOWN,
            },
        }
    },
}
