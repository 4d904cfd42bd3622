"""The business's voice agent: which kind answers its calls, the model, its instructions and
voice, the actions it may take, where transfers go, and the model provider's key (write-only:
stored encrypted with ENCRYPTION_KEYS, never returned, never logged)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from libs.common.crypto import SecretBox, secret_box
from libs.common.models import AGENT_KINDS, AGENT_TOOLS, AgentSettings
from libs.common.settings import Settings
from libs.common.telephony.phones import InvalidPhone, to_e164
from libs.common.web.db import get_session
from libs.common.web.validation import bad_request, bounded_text, json_object
from services.api.auth import current_business_id

blueprint = Blueprint("agent", __name__)

FIELDS = {"kind", "model", "instructions", "voice", "tools", "transfer_number", "api_key"}
MAX_MODEL, MAX_INSTRUCTIONS, MAX_VOICE, MAX_KEY = 100, 20_000, 40, 500


def agent_dict(row: AgentSettings | None) -> dict[str, Any]:
    if row is None:  # nothing chosen: the deployment's default agent answers
        return {
            "kind": "default",
            "model": "",
            "instructions": "",
            "voice": "",
            "tools": list(AGENT_TOOLS),
            "transfer_number": None,
            "api_key_set": False,
            "updated_at": None,
        }
    return {
        "kind": row.kind,
        "model": row.model,
        "instructions": row.instructions,
        "voice": row.voice,
        "tools": list(row.tools),
        "transfer_number": row.transfer_number,
        "api_key_set": row.api_key_encrypted is not None,
        "updated_at": row.updated_at.isoformat() if row.updated_at else None,
    }


def _box() -> SecretBox:
    box: SecretBox | None = current_app.extensions.get("secret_box")
    if box is None:
        settings: Settings = current_app.config["SETTINGS"]
        box = current_app.extensions["secret_box"] = secret_box(settings)
    return box


@blueprint.get("/agent")
def get_agent() -> Response:
    return jsonify(agent_dict(get_session().get(AgentSettings, current_business_id())))


@blueprint.put("/agent")
def put_agent() -> Response:
    """Set the fields given; the others keep their values (the defaults for a first PUT).
    ``api_key``: a string sets it, null removes it (the deployment's OPENAI_API_KEY then)."""
    body = json_object()
    unknown = set(body) - FIELDS
    if unknown:
        raise bad_request(f"unknown fields: {', '.join(sorted(unknown))}")
    session = get_session()
    business_id = current_business_id()
    row = session.get(AgentSettings, business_id)
    if row is None:
        row = AgentSettings(
            business_id=business_id,
            kind="keypad",
            model="",
            instructions="",
            voice="",
            tools=list(AGENT_TOOLS),
        )
        session.add(row)
    if "kind" in body:
        if body["kind"] not in AGENT_KINDS:
            raise bad_request(f"kind must be one of {', '.join(AGENT_KINDS)}")
        row.kind = body["kind"]
    for name, limit in (
        ("model", MAX_MODEL),
        ("instructions", MAX_INSTRUCTIONS),
        ("voice", MAX_VOICE),
    ):
        if name in body:
            setattr(row, name, bounded_text(body[name], name, limit).strip())
    if "tools" in body:
        tools = body["tools"]
        if not isinstance(tools, list) or not all(t in AGENT_TOOLS for t in tools):
            raise bad_request(f"tools must be a list of: {', '.join(AGENT_TOOLS)}")
        row.tools = sorted(set(tools), key=AGENT_TOOLS.index)
    if "transfer_number" in body:
        number = body["transfer_number"]
        if number is None:
            row.transfer_number = None
        else:
            try:
                row.transfer_number = to_e164(bounded_text(number, "transfer_number", 40))
            except InvalidPhone:
                raise bad_request("transfer_number must be a phone number") from None
    if "api_key" in body:
        key = body["api_key"]
        row.api_key_encrypted = (
            None if key is None else _box().encrypt(bounded_text(key, "api_key", MAX_KEY, 1))
        )
    session.commit()
    return jsonify(agent_dict(row))
