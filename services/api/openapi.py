"""GET /api/openapi.json: the routes' document, and the events sent to businesses' endpoints.

Its own module, not spec.py's: the webhook routes use spec.py, and the document reads the
webhooks' event schemas, so keeping both in spec.py made an import cycle."""

from __future__ import annotations

from flask import Response as FlaskResponse
from flask import jsonify

from services.api.spec import api
from services.api.webhooks.schemas import WEBHOOKS


def openapi_document() -> FlaskResponse:
    """Generated from the routes' models on first use, then kept, with the events Switchboard
    sends to businesses' endpoints (OpenAPI 3.1's ``webhooks``)."""
    return jsonify({**api.spec, "webhooks": WEBHOOKS})


openapi_document.audience = "public"  # type: ignore[attr-defined]
