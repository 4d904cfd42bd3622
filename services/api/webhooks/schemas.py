"""Event webhooks: endpoints, the delivery log, and the events sent (OpenAPI ``webhooks``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from libs.events import catalogue, endpoints, ssrf
from services.api.schemas import Body, Page, Paging, Shape, optional

#: The catalogue's types (tests/api/test_webhooks.py keeps these literals equal to it).
EventTypeName = Literal[
    "lead.created", "call.completed", "run.completed", "run.paused", "receipt.synced", "*"
]
DeliveredType = Literal[
    "lead.created", "call.completed", "run.completed", "run.paused", "receipt.synced"
]
Status = Literal["pending", "succeeded", "failed"]
Outcome = Literal[
    "in_flight", "succeeded", "http_error", "timeout", "connection_error", "refused", "abandoned"
]
EventTypes = Annotated[
    list[EventTypeName],
    Field(min_length=1, max_length=10, description='event types to receive; ["*"] for every '
          "type, including ones added later"),
]  # fmt: skip
Url = Annotated[
    str,
    Field(min_length=1, max_length=ssrf.MAX_URL_LENGTH, description="http(s) URL, no "
          "credentials or fragment; in production it must resolve only to public addresses "
          "(checked here and again at every delivery)"),
]  # fmt: skip
Description = Annotated[str, Field(max_length=endpoints.MAX_DESCRIPTION)]


class EndpointInput(Body):
    url: Url
    event_types: EventTypes
    description: Description = ""
    enabled: bool = True


class EndpointUpdate(Body):
    """Only the fields given change; enabling also clears a disabled_reason."""

    url: Url | None = optional()
    event_types: EventTypes | None = optional()
    description: Description | None = optional()
    enabled: bool | None = optional()


class RotateInput(Body):
    grace_s: int = Field(
        endpoints.DEFAULT_SECRET_GRACE_S, ge=0, le=endpoints.MAX_SECRET_GRACE_S,
        description="seconds the previous secret still signs beside the new one (0: not at all)",
    )  # fmt: skip


class DeliveryCounts(Shape):
    pending: int = 0
    succeeded: int = 0
    failed: int = 0


class Endpoint(Shape):
    id: int
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    disabled_at: datetime | None = Field(description="set when failing deliveries disabled it")
    disabled_reason: str | None
    failing_since: datetime | None = Field(
        description="first failed attempt since the last success; the endpoint is disabled "
        "after WEBHOOK_DISABLE_AFTER_S"
    )
    last_success_at: datetime | None
    previous_secret_expires_at: datetime | None = Field(
        description="while in the future, the previous secret signs too"
    )
    deliveries: DeliveryCounts = Field(description="deliveries by status")
    created_at: datetime
    updated_at: datetime


class EndpointWithSecret(Endpoint):
    secret: str = Field(pattern="^whsec_", description="the signing secret, shown only here")


class EndpointList(Shape):
    items: list[Endpoint]


class Attempt(Shape):
    number: int
    outcome: Outcome
    started_at: datetime
    finished_at: datetime | None
    http_status: int | None
    latency_ms: int | None
    response_snippet: str | None = Field(description="the first 1 KB of the answer's body")
    error: str | None


class Delivery(Shape):
    id: int
    endpoint_id: int
    event_id: str = Field(description="evt_…, the webhook-id header")
    event_type: str
    status: Status
    attempts: int
    next_attempt_at: datetime | None = Field(description="null once final")
    succeeded_at: datetime | None
    created_at: datetime
    last_attempt: Attempt | None


class DeliveryDetail(Delivery):
    attempt_log: list[Attempt]
    payload: dict[str, Any] = Field(description="the body sent: the event")


class DeliveryPage(Page[Delivery]):
    pass


class DeliveryFilter(Paging):
    status: Status | None = None
    event_type: DeliveredType | None = None


class Redelivered(Shape):
    redelivered: int = Field(description="how many deliveries were queued")


class EventType(Shape):
    name: str
    description: str
    #: ``schema`` would shadow a pydantic attribute; the JSON name is still "schema".
    body_schema: dict[str, Any] = Field(alias="schema", description="JSON Schema of the body")


class EventTypeList(Shape):
    items: list[EventType]


_SIGNED = (
    "Signed as Standard Webhooks: headers webhook-id (the event id: your idempotency key), "
    "webhook-timestamp (Unix seconds) and webhook-signature (`v1,` + base64 HMAC-SHA256 of "
    "`{webhook-id}.{webhook-timestamp}.{body}` keyed with the base64-decoded secret after "
    "`whsec_`; several, space-separated, during a secret rotation). Answer 2xx within "
    'WEBHOOK_TIMEOUT_S; anything else is retried with backoff. README, "Event webhooks".'
)

#: OpenAPI 3.1's top-level ``webhooks``: what Switchboard sends to a business's endpoints.
WEBHOOKS: dict[str, Any] = {
    kind.name: {
        "post": {
            "summary": kind.description,
            "description": _SIGNED,
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": catalogue.envelope_schema(kind)}}},
            "responses": {"2XX": {"description": "received; not sent again"}},
        }
    }
    for kind in catalogue.EVENT_TYPES.values()
}  # fmt: skip
