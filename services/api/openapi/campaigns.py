"""OpenAPI paths and schemas of leads, the do-not-call list, runs and call logs."""

from __future__ import annotations

from typing import Any

from libs.common.campaigns.leads import MAX_FIELD, MAX_TIMEZONE
from services.api.leads.routes import MAX_DNC_REASON
from services.api.openapi.helpers import (
    BAD_REQUEST,
    CONFLICT,
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
from services.api.runs.routes import MAX_FILTER_LENGTH, MAX_NAME_LENGTH

_NULLABLE_STR = {"type": ["string", "null"]}
_TIME = {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$", "maxLength": 5}
#: Longer input is refused before it is parsed (libs.common.telephony.phones.to_e164).
_PHONE_INPUT = {"type": "string", "description": "any format; stored as E.164", "maxLength": 40}
_FILTER_TEXT = {"type": "string", "maxLength": MAX_FILTER_LENGTH}

SCHEMAS: dict[str, Any] = {
    "Lead": {
        "type": "object",
        "required": ["id", "name", "phone", "source", "callback_requested", "created_at"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "phone": {"type": "string", "description": "E.164"},
            "email": _NULLABLE_STR,
            "timezone": _NULLABLE_STR,
            "notes": _NULLABLE_STR,
            "source": {"type": "string", "enum": ["api", "csv", "call"]},
            "callback_requested": {"type": "boolean"},
            "last_call_status": _NULLABLE_STR,
            "last_called_at": _NULLABLE_STR,
            "created_at": {"type": "string"},
        },
    },
    "LeadInput": {
        "type": "object",
        "required": ["phone"],
        "properties": {
            "phone": _PHONE_INPUT,
            "name": {"type": "string", "maxLength": MAX_FIELD["name"]},
            "timezone": {
                "type": "string",
                "description": "IANA zone, e.g. America/Chicago",
                "maxLength": MAX_TIMEZONE,
            },
            "email": {"type": "string", "maxLength": MAX_FIELD["email"]},
            "notes": {"type": "string", "maxLength": MAX_FIELD["notes"]},
        },
    },
    "DncEntry": {
        "type": "object",
        "required": ["id", "phone", "reason", "created_at"],
        "properties": {
            "id": {"type": "integer"},
            "phone": {"type": "string"},
            "reason": {"type": "string"},
            "created_at": {"type": "string"},
        },
    },
    "RunProgress": {
        "type": "object",
        "required": ["total", "done", "percent", "active_calls", "attempts", "by_status", "eta_s"],
        "properties": {
            "total": {"type": "integer"},
            "done": {"type": "integer"},
            "percent": {"type": "number"},
            "active_calls": {"type": "integer"},
            "attempts": {"type": "integer"},
            "by_status": {"type": "object", "additionalProperties": {"type": "integer"}},
            "eta_s": {"type": ["number", "null"]},
        },
    },
    "Run": {
        "type": "object",
        "required": ["id", "name", "status", "max_attempts", "retry_delay_s", "window", "progress"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "status": {
                "type": "string",
                "enum": ["draft", "running", "paused", "canceled", "completed"],
            },
            "max_attempts": {"type": "integer"},
            "retry_delay_s": {"type": "integer"},
            "window": {
                "type": "object",
                "required": ["start", "end"],
                "properties": {"start": _TIME, "end": _TIME},
            },
            "created_at": {"type": "string"},
            "started_at": _NULLABLE_STR,
            "finished_at": _NULLABLE_STR,
            "progress": ref("RunProgress"),
        },
    },
    "RunInput": {
        "type": "object",
        "required": ["name"],
        "description": "Exactly one of lead_ids or filter ({} selects every lead).",
        "properties": {
            "name": {"type": "string", "maxLength": MAX_NAME_LENGTH},
            "lead_ids": {"type": "array", "items": {"type": "integer"}},
            "filter": {
                "type": "object",
                "properties": {
                    "source": _FILTER_TEXT,
                    "last_call_status": _FILTER_TEXT,
                    "q": _FILTER_TEXT,
                },
            },
            "max_attempts": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
            "retry_delay_s": {"type": "integer", "minimum": 0, "default": 3600},
            "window": {
                "type": "object",
                "properties": {"start": _TIME, "end": _TIME},
                "description": "local calling hours of the called party (default 08:00-21:00)",
            },
        },
    },
    "Call": {
        "type": "object",
        "required": ["id", "attempt", "direction", "to", "status", "created_at"],
        "properties": {
            "id": {"type": "integer"},
            "run_id": {"type": ["integer", "null"]},
            "job_id": {"type": ["integer", "null"]},
            "lead_id": {"type": ["integer", "null"]},
            "attempt": {"type": "integer"},
            "direction": {"type": "string"},
            "to": {"type": "string"},
            "status": {"type": "string"},
            "provider_call_sid": _NULLABLE_STR,
            "answered_by": _NULLABLE_STR,
            "duration_s": {"type": ["integer", "null"]},
            "error": {"oneOf": [{"type": "null"}, {"type": "object"}]},
            "created_at": {"type": "string"},
            "ended_at": _NULLABLE_STR,
            "from": {"type": "string"},
            "disposition": _NULLABLE_STR,
            "transferred_to": _NULLABLE_STR,
            "transfer_mode": {"type": ["string", "null"], "enum": ["cold", "warm", None]},
            "agent_error": _NULLABLE_STR,
        },
    },
    "CallDetail": {
        "allOf": [ref("Call")],
        "type": "object",
        "required": ["transcript"],
        "properties": {
            "transcript": {
                "type": "array",
                "items": ref("TranscriptLine"),
                "description": "both sides, timestamped, in order",
            },
        },
    },
}

_LEAD = json_response(ref("Lead"), "the lead")
_RUN = json_response(ref("Run"), "the run with its progress")
_JOB_ACCEPTED = json_response(
    {"type": "object", "required": ["job"], "properties": {"job": ref("BackgroundJob")}},
    "accepted; poll the job",
)


def _run_action(summary: str, queue: bool) -> dict[str, Any]:
    responses = {
        "200": _RUN,
        "401": UNAUTHORIZED,
        "403": FORBIDDEN,
        "404": NOT_FOUND,
        "409": CONFLICT,
    }
    if queue:
        responses["503"] = QUEUE_DOWN
    return {"post": {"summary": summary, "parameters": [path_id("run_id")], "responses": responses}}


PATHS: dict[str, dict[str, Any]] = {
    "/api/leads": {
        "get": {
            "summary": "List leads",
            "parameters": [
                *PAGING,
                query("q", {"type": "string"}, "name or phone contains"),
                query("source", {"type": "string", "enum": ["api", "csv", "call"]}),
                query("last_call_status", {"type": "string"}),
                query("callback_requested", {"type": "string", "enum": ["true", "false"]}),
            ],
            "responses": {
                "200": json_response(page_of("Lead"), "a page of leads"),
                "400": BAD_REQUEST,
                "401": UNAUTHORIZED,
                "403": FORBIDDEN,
            },
        },
        "post": {
            "summary": "Create a lead",
            "requestBody": body(ref("LeadInput")),
            "responses": {
                "201": _LEAD,
                "400": BAD_REQUEST,
                "401": UNAUTHORIZED,
                "403": FORBIDDEN,
                "409": error("a lead with this phone exists"),
            },
        },
    },
    "/api/leads/bulk": {
        "post": {
            "summary": "Create or update many leads (all or nothing)",
            "requestBody": body(
                {
                    "type": "object",
                    "required": ["leads"],
                    "properties": {"leads": {"type": "array", "items": ref("LeadInput")}},
                }
            ),
            "responses": {
                "200": json_response(
                    {
                        "type": "object",
                        "required": ["created", "updated"],
                        "properties": {
                            "created": {"type": "integer"},
                            "updated": {"type": "integer"},
                        },
                    },
                    "counts",
                ),
                "400": BAD_REQUEST,
                "401": UNAUTHORIZED,
                "403": FORBIDDEN,
            },
        }
    },
    "/api/leads/import": {
        "post": {
            "summary": "Import a CSV (multipart field 'file' or a text/csv body) in the background",
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {"file": {"type": "string", "format": "binary"}},
                        }
                    },
                    "text/csv": {"schema": {"type": "string"}},
                },
            },
            "responses": {
                "202": _JOB_ACCEPTED,
                "400": BAD_REQUEST,
                "401": UNAUTHORIZED,
                "403": FORBIDDEN,
                "413": error("the file is too large"),
                "503": QUEUE_DOWN,
            },
        }
    },
    "/api/leads/{lead_id}": {
        "get": {
            "summary": "A lead",
            "parameters": [path_id("lead_id")],
            "responses": {"200": _LEAD, "401": UNAUTHORIZED, "403": FORBIDDEN, "404": NOT_FOUND},
        },
        "patch": {
            "summary": "Update a lead",
            "parameters": [path_id("lead_id")],
            "requestBody": body(ref("LeadInput")),
            "responses": {
                "200": _LEAD,
                "400": BAD_REQUEST,
                "401": UNAUTHORIZED,
                "403": FORBIDDEN,
                "404": NOT_FOUND,
                "409": error("another lead has this phone"),
            },
        },
        "delete": {
            "summary": "Delete a lead",
            "parameters": [path_id("lead_id")],
            "responses": {
                "204": {"description": "deleted"},
                "401": UNAUTHORIZED,
                "403": FORBIDDEN,
                "404": NOT_FOUND,
            },
        },
    },
    "/api/dnc": {
        "get": {
            "summary": "The business's do-not-call list",
            "parameters": PAGING,
            "responses": {
                "200": json_response(page_of("DncEntry"), "a page of entries"),
                "400": BAD_REQUEST,
                "401": UNAUTHORIZED,
                "403": FORBIDDEN,
            },
        },
        "post": {
            "summary": "Add a number to the do-not-call list (never dialed again)",
            "requestBody": body(
                {
                    "type": "object",
                    "required": ["phone"],
                    "properties": {
                        "phone": _PHONE_INPUT,
                        "reason": {"type": "string", "maxLength": MAX_DNC_REASON},
                    },
                }
            ),
            "responses": {
                "200": json_response(ref("DncEntry"), "already listed"),
                "201": json_response(ref("DncEntry"), "added"),
                "400": BAD_REQUEST,
                "401": UNAUTHORIZED,
                "403": FORBIDDEN,
            },
        },
    },
    "/api/dnc/{entry_id}": {
        "delete": {
            "summary": "Remove a number from the do-not-call list",
            "parameters": [path_id("entry_id")],
            "responses": {
                "204": {"description": "removed"},
                "401": UNAUTHORIZED,
                "403": FORBIDDEN,
                "404": NOT_FOUND,
            },
        }
    },
    "/api/runs": {
        "get": {
            "summary": "Runs, newest first, with progress",
            "parameters": PAGING,
            "responses": {
                "200": json_response(page_of("Run"), "a page of runs"),
                "400": BAD_REQUEST,
                "401": UNAUTHORIZED,
                "403": FORBIDDEN,
            },
        },
        "post": {
            "summary": "Create a run (draft) with one job per selected lead",
            "requestBody": body(ref("RunInput")),
            "responses": {
                "201": _RUN,
                "400": BAD_REQUEST,
                "401": UNAUTHORIZED,
                "403": FORBIDDEN,
            },
        },
    },
    "/api/runs/{run_id}": {
        "get": {
            "summary": "A run with progress computed from its jobs",
            "parameters": [path_id("run_id")],
            "responses": {"200": _RUN, "401": UNAUTHORIZED, "403": FORBIDDEN, "404": NOT_FOUND},
        }
    },
    "/api/runs/{run_id}/start": _run_action("Start a draft run", queue=True),
    "/api/runs/{run_id}/pause": _run_action("Pause: no new dials; calls in progress finish", False),
    "/api/runs/{run_id}/resume": _run_action("Resume a paused run", queue=True),
    "/api/runs/{run_id}/cancel": _run_action(
        "Cancel: queued jobs are canceled; calls in progress finish and are recorded", False
    ),
    "/api/calls": {
        "get": {
            "summary": "Call logs, newest first",
            "parameters": [
                *PAGING,
                query("run_id", {"type": "integer"}),
                query("lead_id", {"type": "integer"}),
                query("status", {"type": "string"}),
            ],
            "responses": {
                "200": json_response(page_of("Call"), "a page of calls"),
                "400": BAD_REQUEST,
                "401": UNAUTHORIZED,
                "403": FORBIDDEN,
            },
        }
    },
    "/api/calls/{call_id}": {
        "get": {
            "summary": "A call, with its transcript",
            "parameters": [path_id("call_id")],
            "responses": {
                "200": json_response(ref("CallDetail"), "the call and its transcript"),
                "401": UNAUTHORIZED,
                "403": FORBIDDEN,
                "404": NOT_FOUND,
            },
        }
    },
}
