"""A business's agent settings become the agent's config: its key decrypted, the deployment's
model and endpoints where it chose none; no settings means the deployment's VOICE_AGENT."""

from __future__ import annotations

from libs.common.crypto import secret_box
from libs.common.db import Database
from libs.common.models import AgentSettings, Business
from libs.common.settings import Settings
from services.calls.media import agent_settings
from services.calls.media.agent import EchoAgent
from services.calls.media.realtime.agent import RealtimeAgent


def _business(db: Database) -> int:
    with db.session() as session:
        business = Business(name="Agent Co", timezone="UTC")
        session.add(business)
        session.commit()
        return business.id


def test_settings_become_the_agent_s_config(db: Database, settings: Settings) -> None:
    settings = settings.with_overrides(
        realtime_model="gpt-realtime-mini",
        realtime_api_base="ws://127.0.0.1:9/v1",
        openai_api_key="sk-deployment",
    )
    business_id = _business(db)
    assert agent_settings.load(db, settings, business_id) is None
    default = agent_settings.build(
        settings.with_overrides(voice_agent="services.calls.media.agent:EchoAgent"), None
    )
    assert isinstance(default, EchoAgent)
    with db.session() as session:
        session.add(
            AgentSettings(
                business_id=business_id,
                kind="realtime",
                model="",
                instructions="Hi",
                voice="marin",
                tools=["transfer", "launch"],
                api_key_encrypted=secret_box(settings).encrypt("sk-own"),
            )
        )
        session.commit()
    config = agent_settings.load(db, settings, business_id)
    assert config is not None
    assert (config.model, config.api_base, config.api_key) == (
        "gpt-realtime-mini",
        "ws://127.0.0.1:9/v1",
        "sk-own",
    )
    assert config.tools == ("transfer",)  # a name the server no longer knows is dropped
    assert isinstance(agent_settings.build(settings, config), RealtimeAgent)
