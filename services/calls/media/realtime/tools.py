"""The agent's actions as the model's functions: their JSON-schema definitions (only those the
business enabled) and the mapping of a call back to an action."""

from __future__ import annotations

import json
from typing import Any

from services.calls.media.agent_settings import AgentConfig
from services.calls.media.frames import (
    Action,
    HangUp,
    OptOut,
    RequestCallback,
    SetDisposition,
    Transfer,
    UpdateLead,
)

DEFAULT_INSTRUCTIONS = (
    "You answer the phone for a business. Be brief and friendly. Save what you learn about the "
    "caller with update_lead. If they ask to be called back, use request_callback; if they ask "
    "never to be called again, use opt_out. Transfer to a person when they ask for one."
)
DISPOSITIONS = [
    "interested",
    "not_interested",
    "callback",
    "wrong_number",
    "voicemail",
    "do_not_call",
    "transferred",
    "other",
]

_STRING = {"type": "string"}
FUNCTIONS: dict[str, dict[str, Any]] = {
    "update_lead": {
        "description": "Save facts about the caller on their lead (name, email, notes, or any "
        "other field the business asked for).",
        "parameters": {
            "type": "object",
            "properties": {
                "name": _STRING,
                "email": _STRING,
                "notes": _STRING,
                "fields": {"type": "object", "description": "any other fields"},
            },
        },
    },
    "request_callback": {
        "description": "The caller wants to be called back.",
        "parameters": {
            "type": "object",
            "properties": {
                "when": {"type": "string", "description": "when, in the caller's words"}
            },
        },
    },
    "opt_out": {
        "description": "The caller asks never to be called again.",
        "parameters": {"type": "object", "properties": {}},
    },
    "transfer": {
        "description": "Hand the caller to a person. warm: the person first hears summary.",
        "parameters": {
            "type": "object",
            "properties": {
                "number": {"type": "string", "description": "E.164; default: the business's"},
                "warm": {"type": "boolean"},
                "summary": _STRING,
            },
        },
    },
    "hang_up": {
        "description": "End the call after saying goodbye.",
        "parameters": {"type": "object", "properties": {"reason": _STRING}},
    },
    "set_disposition": {
        "description": "Record how the call went.",
        "parameters": {
            "type": "object",
            "required": ["value"],
            "properties": {"value": {"type": "string", "enum": DISPOSITIONS}},
        },
    },
}


class BadCall(ValueError):
    """The model called a function wrongly (the message goes back to it)."""


def definitions(enabled: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {"type": "function", "name": name, **spec}
        for name, spec in FUNCTIONS.items()
        if name in enabled
    ]


def to_action(name: str, arguments: str, config: AgentConfig) -> Action:
    if name not in FUNCTIONS or name not in config.tools:
        raise BadCall(f"no function {name[:40]!r}")
    try:
        args = json.loads(arguments)
    except ValueError:
        raise BadCall("arguments are not JSON") from None
    if not isinstance(args, dict):
        raise BadCall("arguments must be an object")
    if name == "update_lead":
        fields = dict(args.get("fields") or {}) if isinstance(args.get("fields"), dict) else {}
        fields.update({k: v for k, v in args.items() if k != "fields"})
        return UpdateLead(fields)
    if name == "request_callback":
        return RequestCallback(str(args.get("when") or "") or None)
    if name == "opt_out":
        return OptOut()
    if name == "transfer":
        number = str(args.get("number") or config.transfer_number or "")
        if not number:
            raise BadCall("no number to transfer to, and the business has set none")
        return Transfer(number, bool(args.get("warm")), str(args.get("summary") or ""))
    if name == "hang_up":
        return HangUp(str(args.get("reason") or "the model ended the call"))
    value = str(args.get("value") or "")
    if value not in DISPOSITIONS:
        raise BadCall(f"value must be one of {', '.join(DISPOSITIONS)}")
    return SetDisposition(value)
