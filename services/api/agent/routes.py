"""The business's voice agent: which kind answers its calls, the model, its instructions and
voice, the actions it may take, where transfers go, and the model provider's key (write-only:
stored encrypted with ENCRYPTION_KEYS, never returned, never logged)."""

from __future__ import annotations

from flask import Blueprint, current_app

from libs.common.crypto import SecretBox, secret_box
from libs.common.models import AGENT_TOOLS
from libs.common.models import AgentSettings as AgentRow
from libs.common.settings import Settings
from libs.web.db import get_session
from services.api.agent.schemas import AgentSettings, AgentSettingsUpdate
from services.api.auth import current_business_id
from services.api.spec import answers, api

blueprint = Blueprint("agent", __name__)


def _shown(row: AgentRow | None) -> AgentSettings:
    if row is None:  # nothing chosen: the deployment's default agent answers
        return AgentSettings.model_validate(
            {"kind": "default", "model": "", "instructions": "", "voice": "",
             "tools": list(AGENT_TOOLS), "transfer_number": None, "api_key_set": False,
             "updated_at": None}
        )  # fmt: skip
    return AgentSettings.model_validate(
        {"kind": row.kind, "model": row.model, "instructions": row.instructions,
         "voice": row.voice, "tools": list(row.tools), "transfer_number": row.transfer_number,
         "api_key_set": row.api_key_encrypted is not None, "updated_at": row.updated_at}
    )  # fmt: skip


def _box() -> SecretBox:
    # Once per app: in development it reads (or creates) the key file under var/.
    box: SecretBox | None = current_app.extensions.get("secret_box")
    if box is None:
        settings: Settings = current_app.config["SETTINGS"]
        box = current_app.extensions["secret_box"] = secret_box(settings)
    return box


@blueprint.get("/agent")
@api.validate(resp=answers({200: AgentSettings}))
def get_agent() -> AgentSettings:
    """The voice agent that answers this business's calls."""
    return _shown(get_session().get(AgentRow, current_business_id()))


@blueprint.put("/agent")
@api.validate(resp=answers({200: AgentSettings}))
def put_agent(json: AgentSettingsUpdate) -> AgentSettings:
    """Choose the voice agent: the fields given are set, the others kept."""
    session = get_session()
    row = session.get(AgentRow, current_business_id())
    if row is None:
        row = AgentRow(business_id=current_business_id(), kind="keypad", model="",
                       instructions="", voice="", tools=list(AGENT_TOOLS))  # fmt: skip
        session.add(row)
    given = json.model_fields_set
    for name in ("kind", "model", "instructions", "voice"):
        value = getattr(json, name)
        if value is not None:
            setattr(row, name, value)
    if json.tools is not None:
        row.tools = sorted(set(json.tools), key=AGENT_TOOLS.index)
    if "transfer_number" in given:
        row.transfer_number = json.transfer_number
    if "api_key" in given:
        row.api_key_encrypted = None if json.api_key is None else _box().encrypt(json.api_key)
    session.commit()
    return _shown(row)
