"""OpenAPI paths and schemas of event webhooks, and the events themselves (``webhooks``)."""

from __future__ import annotations

from typing import Any

from libs.common.models import AttemptOutcome, DeliveryStatus
from libs.common.webhooks import catalogue, endpoints, ssrf
from services.api.openapi.helpers import (
    BAD_REQUEST,
    FORBIDDEN,
    NOT_FOUND,
    PAGING,
    QUEUE_DOWN,
    UNAUTHORIZED,
    body,
    error,
    json_response,
    page_of,
    path_id,
    query,
    ref,
)

_TIME = {"type": ["string", "null"], "format": "date-time"}
_EVENT_TYPES = {
    "type": "array",
    "minItems": 1,
    "items": {"type": "string", "enum": [*catalogue.EVENT_TYPES, catalogue.ALL_TYPES]},
    "description": 'event types to receive; ["*"] for every type, including later ones',
}
_URL = {
    "type": "string",
    "maxLength": ssrf.MAX_URL_LENGTH,
    "description": "http(s) URL, no credentials or fragment. In production it must resolve "
    "only to public addresses (checked here and again at every delivery)",
}
_STATUSES = [s.value for s in DeliveryStatus]

SCHEMAS: dict[str, Any] = {
    "WebhookEndpoint": {
        "type": "object",
        "required": ["id", "url", "description", "event_types", "enabled", "disabled_at",
                     "disabled_reason", "failing_since", "last_success_at",
                     "previous_secret_expires_at", "deliveries", "created_at", "updated_at"],
        "properties": {
            "id": {"type": "integer"},
            "url": {"type": "string"},
            "description": {"type": "string"},
            "event_types": {"type": "array", "items": {"type": "string"}},
            "enabled": {"type": "boolean"},
            "disabled_at": {**_TIME, "description": "set when failing deliveries disabled it"},
            "disabled_reason": {"type": ["string", "null"]},
            "failing_since": {**_TIME, "description": "first failed attempt since the last "
                              "success; the endpoint is disabled after WEBHOOK_DISABLE_AFTER_S"},
            "last_success_at": _TIME,
            "previous_secret_expires_at": {**_TIME, "description": "while set and in the "
                                           "future, the previous secret signs too"},
            "deliveries": {"type": "object", "description": "deliveries by status",
                           "required": _STATUSES,
                           "properties": {s: {"type": "integer"} for s in _STATUSES}},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
        },
    },
    "WebhookEndpointWithSecret": {
        "allOf": [
            ref("WebhookEndpoint"),
            {"type": "object", "required": ["secret"], "properties": {"secret": {
                "type": "string", "pattern": "^whsec_",
                "description": "the signing secret, shown only in this answer"}}},
        ]
    },
    "WebhookEndpointInput": {
        "type": "object",
        "required": ["url", "event_types"],
        "properties": {
            "url": _URL,
            "event_types": _EVENT_TYPES,
            "description": {"type": "string", "maxLength": endpoints.MAX_DESCRIPTION},
            "enabled": {"type": "boolean", "default": True},
        },
    },
    "WebhookEndpointUpdate": {
        "type": "object",
        "properties": {
            "url": _URL,
            "event_types": _EVENT_TYPES,
            "description": {"type": "string", "maxLength": endpoints.MAX_DESCRIPTION},
            "enabled": {"type": "boolean", "description": "true also clears a disabled_reason"},
        },
    },
    "WebhookAttempt": {
        "type": "object",
        "required": ["number", "outcome", "started_at", "finished_at", "http_status",
                     "latency_ms", "response_snippet", "error"],
        "properties": {
            "number": {"type": "integer"},
            "outcome": {"type": "string", "enum": [o.value for o in AttemptOutcome]},
            "started_at": {"type": "string", "format": "date-time"},
            "finished_at": _TIME,
            "http_status": {"type": ["integer", "null"]},
            "latency_ms": {"type": ["integer", "null"]},
            "response_snippet": {"type": ["string", "null"],
                                 "description": "the first 1 KB of the answer's body"},
            "error": {"type": ["string", "null"]},
        },
    },
    "WebhookDelivery": {
        "type": "object",
        "required": ["id", "endpoint_id", "event_id", "event_type", "status", "attempts",
                     "next_attempt_at", "succeeded_at", "created_at", "last_attempt"],
        "properties": {
            "id": {"type": "integer"},
            "endpoint_id": {"type": "integer"},
            "event_id": {"type": "string", "description": "evt_…, the webhook-id header"},
            "event_type": {"type": "string"},
            "status": {"type": "string", "enum": _STATUSES},
            "attempts": {"type": "integer"},
            "next_attempt_at": {**_TIME, "description": "null once final"},
            "succeeded_at": _TIME,
            "created_at": {"type": "string", "format": "date-time"},
            "last_attempt": {"oneOf": [{"type": "null"}, ref("WebhookAttempt")]},
        },
    },
    "WebhookDeliveryDetail": {
        "allOf": [
            ref("WebhookDelivery"),
            {"type": "object", "required": ["attempt_log", "payload"], "properties": {
                "attempt_log": {"type": "array", "items": ref("WebhookAttempt")},
                "payload": {"type": "object", "description": "the body sent (the event)"}}},
        ]
    },
    "WebhookEventType": {
        "type": "object",
        "required": ["name", "description", "schema"],
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "schema": {"type": "object", "description": "JSON Schema of the body sent"},
        },
    },
}  # fmt: skip

_ENDPOINT = json_response(ref("WebhookEndpoint"), "the endpoint")
_WITH_SECRET = json_response(ref("WebhookEndpointWithSecret"), "the endpoint and its secret")
_DISABLED = error("the endpoint is disabled (code endpoint_disabled); enable it first")


def _op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "tags": ["webhooks"], **extra,
            "responses": {**responses, "401": UNAUTHORIZED, "403": FORBIDDEN}}  # fmt: skip


_ENDPOINT_ID = [path_id("endpoint_id")]
_DELIVERY_ID = [path_id("delivery_id")]

PATHS: dict[str, dict[str, Any]] = {
    "/api/webhooks/event-types": {
        "get": _op("The event catalogue, with each body's JSON Schema", {
            "200": json_response({"type": "object", "required": ["items"], "properties": {
                "items": {"type": "array", "items": ref("WebhookEventType")}}}, "every type"),
        }),
    },
    "/api/webhooks/endpoints": {
        "get": _op("The business's webhook endpoints", {
            "200": json_response({"type": "object", "required": ["items"], "properties": {
                "items": {"type": "array", "items": ref("WebhookEndpoint")}}}, "every endpoint"),
        }),
        "post": _op("Register an endpoint; the answer holds its signing secret, shown once", {
            "201": _WITH_SECRET,
            "400": error("invalid input (bad_request), or a URL deliveries may not reach "
                         "(url_not_allowed: private, loopback, link-local… in production)"),
            "409": error(f"the business has {endpoints.MAX_ENDPOINTS} endpoints already"),
        }, requestBody=body(ref("WebhookEndpointInput"))),
    },
    "/api/webhooks/endpoints/{endpoint_id}": {
        "get": _op("One endpoint", {"200": _ENDPOINT, "404": NOT_FOUND},
                   parameters=_ENDPOINT_ID),
        "patch": _op("Change the URL, event types, description, or enable/disable", {
            "200": _ENDPOINT, "400": BAD_REQUEST, "404": NOT_FOUND,
        }, parameters=_ENDPOINT_ID, requestBody=body(ref("WebhookEndpointUpdate"))),
        "delete": _op("Delete an endpoint with its delivery log", {
            "204": {"description": "deleted"}, "404": NOT_FOUND,
        }, parameters=_ENDPOINT_ID),
    },
    "/api/webhooks/endpoints/{endpoint_id}/rotate-secret": {
        "post": _op("A new signing secret (shown once); the old one keeps signing beside it "
                    "for grace_s", {
            "200": _WITH_SECRET, "400": BAD_REQUEST, "404": NOT_FOUND,
        }, parameters=_ENDPOINT_ID, requestBody={"required": False, "content": {
            "application/json": {"schema": {"type": "object", "properties": {"grace_s": {
                "type": "integer", "minimum": 0, "maximum": endpoints.MAX_SECRET_GRACE_S,
                "default": endpoints.DEFAULT_SECRET_GRACE_S,
                "description": "seconds the previous secret still signs (0: not at all)"}}}}}}),
    },
    "/api/webhooks/endpoints/{endpoint_id}/deliveries": {
        "get": _op("The endpoint's delivery log, newest first, each with its last attempt", {
            "200": json_response(page_of("WebhookDelivery"), "a page of deliveries"),
            "400": BAD_REQUEST, "404": NOT_FOUND,
        }, parameters=[*_ENDPOINT_ID, *PAGING,
                       query("status", {"type": "string", "enum": _STATUSES}),
                       query("event_type", {"type": "string",
                                            "enum": list(catalogue.EVENT_TYPES)})]),
    },
    "/api/webhooks/endpoints/{endpoint_id}/redeliver-failed": {
        "post": _op("Send every failed delivery of the endpoint again, once each", {
            "202": json_response({"type": "object", "required": ["redelivered"], "properties": {
                "redelivered": {"type": "integer"}}}, "how many were queued"),
            "404": NOT_FOUND, "409": _DISABLED, "503": QUEUE_DOWN,
        }, parameters=_ENDPOINT_ID),
    },
    "/api/webhooks/deliveries/{delivery_id}": {
        "get": _op("One delivery with every attempt and the body sent", {
            "200": json_response(ref("WebhookDeliveryDetail"), "the delivery"),
            "404": NOT_FOUND,
        }, parameters=_DELIVERY_ID),
    },
    "/api/webhooks/deliveries/{delivery_id}/redeliver": {
        "post": _op("Send the event again now, once (a pending delivery: now, not later)", {
            "202": json_response(ref("WebhookDelivery"), "queued"),
            "404": NOT_FOUND, "409": _DISABLED, "503": QUEUE_DOWN,
        }, parameters=_DELIVERY_ID),
    },
}  # fmt: skip

_SIGNED = (
    "Signed as Standard Webhooks: headers webhook-id (the event id: your idempotency key), "
    "webhook-timestamp (Unix seconds) and webhook-signature (`v1,` + base64 HMAC-SHA256 of "
    "`{webhook-id}.{webhook-timestamp}.{body}` keyed with the base64-decoded secret after "
    "`whsec_`; several space-separated during a secret rotation). Answer 2xx within "
    "WEBHOOK_TIMEOUT_S; anything else is retried with backoff. See the README, "
    '"Event webhooks".'
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
