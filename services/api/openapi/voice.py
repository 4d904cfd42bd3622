"""OpenAPI: the business's voice agent and call transcripts."""

from __future__ import annotations

from typing import Any

from libs.common.models import AGENT_KINDS, AGENT_TOOLS
from services.api.openapi.helpers import (
    BAD_REQUEST,
    FORBIDDEN,
    UNAUTHORIZED,
    body,
    json_response,
    ref,
)

_NULLABLE_STR = {"type": ["string", "null"]}
_TOOLS = {
    "type": "array",
    "items": {"type": "string", "enum": list(AGENT_TOOLS)},
    "maxItems": len(AGENT_TOOLS),
}

SCHEMAS: dict[str, Any] = {
    "AgentSettings": {
        "type": "object",
        "required": [
            "kind",
            "model",
            "instructions",
            "voice",
            "tools",
            "transfer_number",
            "api_key_set",
            "updated_at",
        ],
        "properties": {
            "kind": {
                "type": "string",
                "enum": ["default", *AGENT_KINDS],
                "description": "default: nothing chosen, the deployment's VOICE_AGENT",
            },
            "model": {"type": "string"},
            "instructions": {"type": "string"},
            "voice": {"type": "string"},
            "tools": _TOOLS,
            "transfer_number": _NULLABLE_STR,
            "api_key_set": {
                "type": "boolean",
                "description": "a key of the business's own is stored (never shown)",
            },
            "updated_at": _NULLABLE_STR,
        },
    },
    "AgentSettingsUpdate": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "kind": {"type": "string", "enum": list(AGENT_KINDS)},
            "model": {"type": "string", "maxLength": 100},
            "instructions": {"type": "string", "maxLength": 20_000},
            "voice": {"type": "string", "maxLength": 40},
            "tools": _TOOLS,
            "transfer_number": {"type": ["string", "null"], "maxLength": 40},
            "api_key": {
                "type": ["string", "null"],
                "minLength": 1,
                "maxLength": 500,
                "description": "the model provider's key; stored encrypted; null removes it",
            },
        },
    },
    "TranscriptLine": {
        "type": "object",
        "required": ["at", "role", "text"],
        "properties": {
            "at": {"type": "string"},
            "role": {"type": "string", "enum": ["caller", "agent", "system"]},
            "text": {"type": "string"},
        },
    },
}

_AGENT = json_response(ref("AgentSettings"), "the agent settings")

PATHS: dict[str, dict[str, Any]] = {
    "/api/agent": {
        "get": {
            "summary": "The voice agent that answers this business's calls",
            "responses": {"200": _AGENT, "401": UNAUTHORIZED, "403": FORBIDDEN},
        },
        "put": {
            "summary": "Choose the voice agent: fields given are set, others kept",
            "requestBody": body(ref("AgentSettingsUpdate")),
            "responses": {"200": _AGENT, "400": BAD_REQUEST, "401": UNAUTHORIZED, "403": FORBIDDEN},
        },
    },
}
