"""OpenAPI paths and schemas of daily schedules."""

from __future__ import annotations

from typing import Any

from services.api.openapi.helpers import (
    BAD_REQUEST,
    FORBIDDEN,
    NOT_FOUND,
    PAGING,
    QUEUE_DOWN,
    UNAUTHORIZED,
    body,
    error,
    json_response,
    page_of,
    path_id,
    query,
    ref,
)

_TIME = {
    "type": "string",
    "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$",
    "maxLength": 5,
    "example": "09:30",
}
_DAYS = {
    "type": "array",
    "minItems": 1,
    "items": {"type": "string", "enum": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]},
}
_ZONE = {"type": "string", "description": "IANA time zone, e.g. Europe/Berlin", "maxLength": 64}

SCHEMAS: dict[str, Any] = {
    "Schedule": {
        "type": "object",
        "required": ["id", "lead_id", "enabled", "local_time", "timezone", "days", "next_due_at"],
        "properties": {
            "id": {"type": "integer"},
            "lead_id": {"type": "integer"},
            "enabled": {"type": "boolean"},
            "local_time": _TIME,
            "timezone": _ZONE,
            "days": _DAYS,
            "next_due_at": {
                "type": ["string", "null"],
                "description": "next firing instant (UTC, ISO 8601); null while disabled",
            },
            "created_at": {"type": "string"},
            "updated_at": {"type": "string"},
        },
    },
    "ScheduleInput": {
        "type": "object",
        "required": ["lead_id", "local_time"],
        "properties": {
            "lead_id": {"type": "integer"},
            "local_time": _TIME,
            "timezone": {**_ZONE, "description": "default: the lead's zone, else the business's"},
            "days": {**_DAYS, "description": "default: every day"},
            "enabled": {"type": "boolean", "default": True},
        },
    },
    "ScheduleUpdate": {
        "type": "object",
        "properties": {
            "local_time": _TIME,
            "timezone": {
                "type": ["string", "null"],
                "maxLength": 64,
                "description": "IANA zone; null goes back to the lead's zone, else the business's",
            },
            "days": _DAYS,
            "enabled": {"type": "boolean"},
        },
    },
    "ScheduleOccurrence": {
        "type": "object",
        "required": ["local_date", "due_at", "status"],
        "properties": {
            "local_date": {"type": "string", "format": "date"},
            "due_at": {"type": "string"},
            "status": {
                "type": "string",
                "enum": ["pending", "placed", "skipped", "missed", "failed"],
            },
            "call_job_id": {"type": ["integer", "null"]},
            "error": {"type": ["string", "null"]},
        },
    },
}

_SCHEDULE = json_response(ref("Schedule"), "the schedule")

PATHS: dict[str, dict[str, Any]] = {
    "/api/schedules": {
        "get": {
            "summary": "List daily schedules",
            "parameters": [
                *PAGING,
                query("enabled", {"type": "string", "enum": ["true", "false"]}),
            ],
            "responses": {
                "200": json_response(page_of("Schedule"), "a page of schedules"),
                "400": BAD_REQUEST,
                "401": UNAUTHORIZED,
                "403": FORBIDDEN,
            },
        },
        "post": {
            "summary": "Call a lead every day (or on some days) at a local time",
            "requestBody": body(ref("ScheduleInput")),
            "responses": {
                "201": _SCHEDULE,
                "400": BAD_REQUEST,
                "401": UNAUTHORIZED,
                "403": FORBIDDEN,
                "409": error("the lead already has a schedule"),
            },
        },
    },
    "/api/schedules/{schedule_id}": {
        "get": {
            "summary": "One schedule",
            "parameters": [path_id("schedule_id")],
            "responses": {
                "200": _SCHEDULE,
                "401": UNAUTHORIZED,
                "403": FORBIDDEN,
                "404": NOT_FOUND,
            },
        },
        "patch": {
            "summary": "Change time, zone, days or enabled; next_due_at is recomputed",
            "parameters": [path_id("schedule_id")],
            "requestBody": body(ref("ScheduleUpdate")),
            "responses": {
                "200": _SCHEDULE,
                "400": BAD_REQUEST,
                "401": UNAUTHORIZED,
                "403": FORBIDDEN,
                "404": NOT_FOUND,
            },
        },
        "delete": {
            "summary": "Delete a schedule (calls already placed are kept)",
            "parameters": [path_id("schedule_id")],
            "responses": {
                "204": {"description": "deleted"},
                "401": UNAUTHORIZED,
                "403": FORBIDDEN,
                "404": NOT_FOUND,
            },
        },
    },
    "/api/schedules/{schedule_id}/occurrences": {
        "get": {
            "summary": "What happened on each local date (placed, missed, skipped, failed)",
            "parameters": [path_id("schedule_id"), *PAGING],
            "responses": {
                "200": json_response(page_of("ScheduleOccurrence"), "newest first"),
                "400": BAD_REQUEST,
                "401": UNAUTHORIZED,
                "403": FORBIDDEN,
                "404": NOT_FOUND,
            },
        },
    },
    "/api/schedules/trigger": {
        "post": {
            "summary": "Run the due check now (rate-limited)",
            "description": "A business token checks its business. An operator token checks "
            "the business given as business_id, or every business when it is absent.",
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {"business_id": {"type": "integer"}},
                        }
                    }
                },
            },
            "responses": {
                "202": json_response(
                    {
                        "type": "object",
                        "required": ["queued", "business_id", "message_id"],
                        "properties": {
                            "queued": {"type": "boolean"},
                            "business_id": {"type": ["integer", "null"]},
                            "message_id": {"type": "string"},
                        },
                    },
                    "the due check was queued",
                ),
                "400": BAD_REQUEST,
                "401": UNAUTHORIZED,
                "403": FORBIDDEN,
                "429": error("past the limit per minute; see the Retry-After header"),
                "503": QUEUE_DOWN,
            },
        },
    },
}
