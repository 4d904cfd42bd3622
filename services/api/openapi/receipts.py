"""OpenAPI paths and schemas of Gmail connections and the receipts synced from them."""

from __future__ import annotations

from typing import Any

from services.api.openapi.helpers import (
    BAD_REQUEST,
    FORBIDDEN,
    NOT_FOUND,
    PAGING,
    QUEUE_DOWN,
    UNAUTHORIZED,
    error,
    json_response,
    page_of,
    path_id,
    query,
    ref,
)

_NULLABLE_STR = {"type": ["string", "null"]}
_ATTACHMENT = {
    "type": "object",
    "required": ["id", "filename", "mime_type", "size", "sha256"],
    "properties": {
        "id": {"type": "integer"},
        "filename": {"type": "string"},
        "mime_type": {"type": "string"},
        "size": {"type": "integer"},
        "sha256": {"type": "string", "description": "hex; also the download's ETag"},
    },
}

SCHEMAS: dict[str, Any] = {
    "GmailConnection": {
        "type": "object",
        "required": ["id", "email", "status", "sync_job_id", "last_synced_at", "created_at"],
        "properties": {
            "id": {"type": "integer"},
            "email": {"type": "string"},
            "status": {
                "type": "string",
                "enum": ["connected", "needs_reauth"],
                "description": "needs_reauth: Google refused the token; connect the inbox again",
            },
            "sync_job_id": {
                "type": ["integer", "null"],
                "description": "the latest sync's BackgroundJob (GET /api/jobs/{id})",
            },
            "last_synced_at": _NULLABLE_STR,
            "last_error": _NULLABLE_STR,
            "created_at": {"type": "string"},
        },
    },
    "Receipt": {
        "type": "object",
        "required": ["id", "gmail_message_id", "subject", "sender", "received_at", "attachments"],
        "properties": {
            "id": {"type": "integer"},
            "gmail_message_id": {"type": "string"},
            "subject": {"type": "string"},
            "sender": {"type": "string"},
            "received_at": {"type": "string", "format": "date-time"},
            "vendor": _NULLABLE_STR,
            "date": {"type": ["string", "null"], "format": "date"},
            "total_amount": {
                "type": ["string", "null"],
                "description": 'decimal as a string, e.g. "42.10"',
            },
            "currency": {"type": ["string", "null"], "description": "ISO 4217, e.g. USD"},
            "extraction": {
                "type": "object",
                "description": "per field: where the value was found and how sure it is",
            },
            "attachments": {"type": "array", "items": ref("ReceiptAttachment")},
        },
    },
    "ReceiptAttachment": _ATTACHMENT,
    "SyncRunning": {
        "type": "object",
        "required": ["error", "job"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "enum": ["sync_running"]},
                    "message": {"type": "string"},
                },
            },
            "job": ref("BackgroundJob"),
        },
    },
}

_DATE = {"type": "string", "format": "date"}
_AMOUNT = {"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "example": "12.50"}
_REDIRECT = {
    "description": "to {PUBLIC_BASE_URL}/receipts?gmail=connected, or ?gmail=error&reason=... "
    "(access_denied, invalid_grant, google_unreachable, profile_unavailable, ...)",
    "headers": {"Location": {"schema": {"type": "string"}}},
}

PATHS: dict[str, dict[str, Any]] = {
    "/api/gmail/connect": {
        "get": {
            "summary": "The Google consent URL to send the browser to",
            "description": "The URL carries a signed state, usable once within 10 minutes, "
            "that binds the consent to the caller's business.",
            "parameters": [
                query("login_hint", {"type": "string"}, "the Gmail address to preselect")
            ],
            "responses": {
                "200": json_response(
                    {
                        "type": "object",
                        "required": ["url"],
                        "properties": {"url": {"type": "string"}},
                    },
                    "open this URL in the browser",
                ),
                "400": BAD_REQUEST,
                "401": UNAUTHORIZED,
                "403": FORBIDDEN,
                "503": error("gmail_not_configured, or redis_unavailable"),
            },
        }
    },
    "/api/gmail/callback": {
        "get": {
            "summary": "Google's redirect after the consent (the browser's, no token)",
            "description": "Checks the state, exchanges the code, reads the account's address "
            "and stores its refresh token encrypted, then redirects to the SPA.",
            "security": [],
            "parameters": [
                query("state", {"type": "string"}, "from /api/gmail/connect"),
                query("code", {"type": "string"}),
                query("error", {"type": "string"}, "e.g. access_denied"),
            ],
            "responses": {
                "302": _REDIRECT,
                "400": error("invalid_state: forged, altered, expired or already used"),
                "503": error("gmail_not_configured, or redis_unavailable"),
            },
        }
    },
    "/api/gmail/connections": {
        "get": {
            "summary": "The business's connected inboxes",
            "responses": {
                "200": json_response(
                    {
                        "type": "object",
                        "required": ["items"],
                        "properties": {"items": {"type": "array", "items": ref("GmailConnection")}},
                    },
                    "every connection",
                ),
                "401": UNAUTHORIZED,
                "403": FORBIDDEN,
            },
        }
    },
    "/api/gmail/connections/{connection_id}": {
        "delete": {
            "summary": "Disconnect: delete the token here, revoke it at Google (best effort)",
            "description": "Receipts already synced are kept. A sync in flight is failed.",
            "parameters": [path_id("connection_id")],
            "responses": {
                "204": {"description": "disconnected"},
                "401": UNAUTHORIZED,
                "403": FORBIDDEN,
                "404": NOT_FOUND,
            },
        }
    },
    "/api/receipts/sync": {
        "post": {
            "summary": "Sync an inbox's receipts in the background; follow the returned job",
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "connection_id": {
                                    "type": "integer",
                                    "description": "required when the business has several",
                                }
                            },
                        }
                    }
                },
            },
            "responses": {
                "202": json_response(
                    {
                        "type": "object",
                        "required": ["job"],
                        "properties": {"job": ref("BackgroundJob")},
                    },
                    "queued",
                ),
                "400": BAD_REQUEST,
                "401": UNAUTHORIZED,
                "403": FORBIDDEN,
                "404": error("no_connection (none connected) or not_found (connection_id)"),
                "409": {
                    "description": "sync_running (the body names the job), or needs_reauth "
                    "(an Error: connect the inbox again)",
                    "content": {
                        "application/json": {
                            "schema": {"anyOf": [ref("SyncRunning"), ref("Error")]}
                        }
                    },
                },
                "503": QUEUE_DOWN,
            },
        }
    },
    "/api/receipts": {
        "get": {
            "summary": "List receipts, newest first",
            "parameters": [
                *PAGING,
                query("from", _DATE, "receipt date on or after (YYYY-MM-DD)"),
                query("to", _DATE, "receipt date on or before (YYYY-MM-DD)"),
                query("vendor", {"type": "string"}, "case-insensitive substring"),
                query("min_amount", _AMOUNT),
                query("max_amount", _AMOUNT),
                query("currency", {"type": "string", "pattern": "^[A-Za-z]{3}$"}),
                query("connection_id", {"type": "integer"}),
            ],
            "responses": {
                "200": json_response(page_of("Receipt"), "a page of receipts"),
                "400": BAD_REQUEST,
                "401": UNAUTHORIZED,
                "403": FORBIDDEN,
            },
        }
    },
    "/api/receipts/{receipt_id}": {
        "get": {
            "summary": "One receipt with its attachments' metadata",
            "parameters": [path_id("receipt_id")],
            "responses": {
                "200": json_response(ref("Receipt"), "the receipt"),
                "401": UNAUTHORIZED,
                "403": FORBIDDEN,
                "404": NOT_FOUND,
            },
        }
    },
    "/api/receipts/{receipt_id}/attachments/{attachment_id}": {
        "get": {
            "summary": "Download an attachment (Content-Disposition: attachment; ETag: sha256)",
            "parameters": [path_id("receipt_id"), path_id("attachment_id")],
            "responses": {
                "200": {
                    "description": "the file, with its stored mime type",
                    "headers": {
                        "ETag": {"schema": {"type": "string"}},
                        "Content-Disposition": {"schema": {"type": "string"}},
                    },
                    "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                },
                "304": {"description": "If-None-Match matched the ETag"},
                "401": UNAUTHORIZED,
                "403": FORBIDDEN,
                "404": NOT_FOUND,
            },
        }
    },
}
