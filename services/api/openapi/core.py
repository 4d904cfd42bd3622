"""OpenAPI paths and schemas of the platform endpoints: health, me, jobs, ping, status."""

from __future__ import annotations

from typing import Any

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {},
            },
        }
    },
}

_JOB = {
    "type": "object",
    "required": ["id", "kind", "status", "progress", "created_at"],
    "properties": {
        "id": {"type": "integer"},
        "business_id": {"type": ["integer", "null"]},
        "kind": {"type": "string"},
        "status": {"type": "string", "enum": ["queued", "running", "succeeded", "failed"]},
        "progress": {
            "type": "object",
            "required": ["done", "total", "percent"],
            "properties": {
                "done": {"type": "integer"},
                "total": {"type": ["integer", "null"]},
                "percent": {"type": ["number", "null"]},
            },
        },
        "result": {"type": ["object", "null"]},
        "error": {"oneOf": [{"type": "null"}, _ERROR["properties"]["error"]]},  # type: ignore[index]
        "created_at": {"type": "string", "format": "date-time"},
        "started_at": {"type": ["string", "null"], "format": "date-time"},
        "finished_at": {"type": ["string", "null"], "format": "date-time"},
    },
}

_ME = {
    "type": "object",
    "required": ["role", "token_id", "business"],
    "properties": {
        "role": {"type": "string", "enum": ["business", "operator"]},
        "token_id": {"type": "integer"},
        "business": {
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": ["id", "name", "timezone", "max_concurrent_calls"],
                    "properties": {
                        "id": {"type": "integer"},
                        "name": {"type": "string"},
                        "timezone": {"type": "string"},
                        "max_concurrent_calls": {"type": "integer"},
                    },
                },
            ]
        },
    },
}

_STATUS = {
    "type": "object",
    "required": ["ok", "checked_at", "components"],
    "properties": {
        "ok": {"type": "boolean"},
        "checked_at": {"type": "number"},
        "components": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["required", "ok"],
                "properties": {"required": {"type": "boolean"}, "ok": {"type": "boolean"}},
            },
        },
    },
}

_HEALTH = {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}}


def _json(schema_ref: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}},
    }


_UNAUTHORIZED = _json("Error", "missing, malformed, unknown or revoked token")
_FORBIDDEN = _json("Error", "an operator token is required")
_NOT_FOUND = _json("Error", "no such resource for this business")
_QUEUE_DOWN = _json("Error", "the job queue is unreachable (code queue_unavailable)")

PATHS: dict[str, dict[str, Any]] = {
    "/api/healthz": {
        "get": {
            "summary": "The api process answers",
            "security": [],
            "responses": {"200": _json("Health", "alive")},
        }
    },
    "/api/readyz": {
        "get": {
            "summary": "Database and broker reachable",
            "security": [],
            "responses": {
                "200": _json("Health", "ready"),
                "503": _json("Health", "a dependency is down; `checks` says which"),
            },
        }
    },
    "/api/openapi.json": {
        "get": {
            "summary": "This document",
            "security": [],
            "responses": {"200": {"description": "OpenAPI 3.1 document"}},
        }
    },
    "/api/me": {
        "get": {
            "summary": "The caller's role and business",
            "responses": {"200": _json("Me", "the caller"), "401": _UNAUTHORIZED},
        }
    },
    "/api/jobs/{job_id}": {
        "get": {
            "summary": "A background job and its progress",
            "parameters": [
                {"name": "job_id", "in": "path", "required": True, "schema": {"type": "integer"}}
            ],
            "responses": {
                "200": _json("BackgroundJob", "the job"),
                "401": _UNAUTHORIZED,
                "404": _NOT_FOUND,
            },
        }
    },
    "/api/system/ping": {
        "post": {
            "summary": "Send a ping through the queue to a worker; poll the returned job",
            "responses": {
                "202": {
                    "description": "queued",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["job"],
                                "properties": {
                                    "job": {"$ref": "#/components/schemas/BackgroundJob"}
                                },
                            }
                        }
                    },
                },
                "401": _UNAUTHORIZED,
                "503": _QUEUE_DOWN,
            },
        }
    },
    "/api/queue/status": {
        "get": {
            "summary": "Health of every component: database, broker, queues, workers, scheduler",
            "responses": {
                "200": _json("Status", "the report"),
                "401": _UNAUTHORIZED,
                "403": _FORBIDDEN,
            },
        }
    },
}


SCHEMAS: dict[str, Any] = {
    "Error": _ERROR,
    "BackgroundJob": _JOB,
    "Me": _ME,
    "Status": _STATUS,
    "Health": _HEALTH,
}
