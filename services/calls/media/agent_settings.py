"""Which agent answers a business's calls, built from its settings (``agent_settings`` row)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from libs.common.crypto import InvalidToken, secret_box
from libs.common.db import Database
from libs.common.models import AGENT_TOOLS, AgentSettings
from libs.common.settings import Settings
from services.calls.media.agent import Agent, KeypadAgent, load_agent_class

logger = logging.getLogger(__name__)

#: The agent class of each kind a business can choose.
AGENT_CLASSES = {
    "keypad": "services.calls.media.agent:KeypadAgent",
    "realtime": "services.calls.media.realtime.agent:RealtimeAgent",
    "cascaded": "services.calls.media.cascaded.agent:CascadedAgent",
}


@dataclass(frozen=True)
class AgentConfig:
    """A business's agent settings, with its provider key decrypted (for this call only)."""

    kind: str
    model: str = ""
    instructions: str = ""
    voice: str = ""
    tools: tuple[str, ...] = AGENT_TOOLS
    transfer_number: str | None = None
    api_key: str | None = field(default=None, repr=False)
    api_base: str = ""


def load(database: Database, settings: Settings, business_id: int) -> AgentConfig | None:
    """None when the business has chosen nothing (the deployment's ``VOICE_AGENT`` answers)."""
    with database.session() as session:
        row = session.get(AgentSettings, business_id)
        if row is None:
            return None
        api_key = settings.openai_api_key
        if row.api_key_encrypted:
            try:
                api_key = secret_box(settings).decrypt(row.api_key_encrypted)
            except InvalidToken:
                logger.error(
                    "business %d: its provider key opens with no ENCRYPTION_KEYS key", business_id
                )
        realtime = row.kind == "realtime"
        base = settings.realtime_api_base if realtime else settings.model_api_base
        model = row.model or (settings.realtime_model if realtime else "")
        tools = tuple(t for t in row.tools if t in AGENT_TOOLS)
        return AgentConfig(
            row.kind, model, row.instructions, row.voice, tools, row.transfer_number, api_key, base
        )


def build(settings: Settings, config: AgentConfig | None) -> Agent:
    if config is None:
        return load_agent_class(settings.voice_agent)(None)
    if config.kind not in AGENT_CLASSES:
        logger.error("unknown agent kind %r: answering with the keypad", config.kind)
        return KeypadAgent(config)
    return load_agent_class(AGENT_CLASSES[config.kind])(config)
