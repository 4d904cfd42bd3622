"""The OpenAPI document of the API. A test keeps it equal to the routes Flask serves."""

from __future__ import annotations

from typing import Any

from services.api.openapi import admin, campaigns, core, receipts, schedules, voice

PATHS: dict[str, dict[str, Any]] = {
    **core.PATHS,
    **campaigns.PATHS,
    **schedules.PATHS,
    **receipts.PATHS,
    **admin.PATHS,
    **voice.PATHS,
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Switchboard API",
            "version": "0.1.0",
            "description": "REST API for the Switchboard SPA and operators. Errors are "
            '`{"error": {"code", "message"}}`. Send `Authorization: Bearer <token>`.',
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": PATHS,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                **core.SCHEMAS,
                **campaigns.SCHEMAS,
                **schedules.SCHEMAS,
                **receipts.SCHEMAS,
                **admin.SCHEMAS,
                **voice.SCHEMAS,
            },
        },
    }
