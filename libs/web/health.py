"""/healthz (the process answers), /readyz (database and broker reachable), /metrics."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from libs.common import metrics
from libs.common.settings import Settings
from libs.queueops.queue_health import QueueUnavailable, check_broker
from libs.web.db import get_database

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@blueprint.get("/readyz")
def readyz() -> Response:
    settings: Settings = current_app.config["SETTINGS"]
    checks: dict[str, dict[str, Any]] = {}
    try:
        get_database().ping(settings.database_check_timeout_s)
        checks["database"] = {"ok": True}
    except Exception as exc:  # any driver error means "not ready", never a 500
        checks["database"] = {"ok": False, "error": type(exc).__name__}
    try:
        check_broker(settings.queue_broker_url, settings.broker_check_timeout_s)
        checks["broker"] = {"ok": True}
    except QueueUnavailable as exc:
        checks["broker"] = {"ok": False, "error": exc.message}
    down = sorted(name for name, check in checks.items() if not check["ok"])
    if down:
        body = {
            "status": "unavailable",
            "checks": checks,
            "error": {"code": "not_ready", "message": f"unreachable: {', '.join(down)}"},
        }
        response = jsonify(body)
        response.status_code = 503
        return response
    return jsonify({"status": "ready", "checks": checks})


@blueprint.get("/metrics")
def metrics_endpoint() -> Response:
    body, content_type = metrics.render_latest(current_app.extensions.get("metrics_collectors", []))
    return Response(body, content_type=content_type)
