"""The business's voice agent: what a client sends to choose it and how it is shown. The model
provider's key is write-only: stored encrypted, shown only as whether one is set."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints

from libs.common.models import AGENT_TOOLS
from libs.telephony.phones import to_e164
from services.api.schemas import Body, Shape, optional

Kind = Literal["keypad", "realtime", "cascaded"]
Tool = Literal[
    "update_lead", "request_callback", "opt_out", "transfer", "hang_up", "set_disposition"
]
Tools = Annotated[list[Tool], Field(max_length=len(AGENT_TOOLS))]
Phone = Annotated[
    str,
    StringConstraints(max_length=40),
    AfterValidator(to_e164),  # InvalidPhone is a ValueError naming the number
]


class AgentSettingsUpdate(Body):
    """Only the fields given change (the defaults on a first PUT)."""

    kind: Kind | None = optional()
    model: Annotated[str, StringConstraints(max_length=100, strip_whitespace=True)] | None = (
        optional(description="e.g. gpt-realtime; empty: the deployment's REALTIME_MODEL")
    )
    instructions: Annotated[str, StringConstraints(max_length=20_000)] | None = optional(
        description="what the model is told before every call"
    )
    voice: Annotated[str, StringConstraints(max_length=40, strip_whitespace=True)] | None = (
        optional(description="the model's voice, e.g. marin")
    )
    tools: Tools | None = optional(description="the actions the model may take")
    transfer_number: Phone | None = Field(
        None, description="where a transfer goes when the model names no number; null: none"
    )
    api_key: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = Field(
        None, description="the model provider's key, stored encrypted; null removes it"
    )


class AgentSettings(Shape):
    kind: Literal["default", "keypad", "realtime", "cascaded"] = Field(
        description="default: nothing chosen, the deployment's VOICE_AGENT answers"
    )
    model: str
    instructions: str
    voice: str
    tools: list[Tool]
    transfer_number: str | None
    api_key_set: bool = Field(description="a key of the business's own is stored (never shown)")
    updated_at: datetime | None
