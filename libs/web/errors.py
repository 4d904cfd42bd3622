"""Every 4xx/5xx is JSON: ``{"error": {"code": ..., "message": ...}}``, never an HTML page."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from libs.queueops.queue_health import QueueUnavailable

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the client can act on; raised anywhere in a request, answered as JSON."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details, self.headers = details, headers or {}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    response = jsonify({"error": body})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _code_for(exc: HTTPException) -> str:
    return (exc.name or "error").lower().replace(" ", "_").replace("'", "")


def error_code(status: int) -> str:
    """The code of an error known only by its status, as Flask names the same status (414:
    ``request_uri_too_long``): used by what answers before Flask (gunicorn, the dev console;
    deploy/nginx/nginx.conf holds the same names)."""
    if status == 500:
        return "internal_error"
    return HTTP_STATUS_CODES.get(status, "error").lower().replace(" ", "_").replace("'", "")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.errorhandler(QueueUnavailable)
    def _queue_unavailable(exc: QueueUnavailable) -> Response:
        return error_response(503, exc.code, exc.message, headers={"Retry-After": "5"})

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def _database_unavailable(exc: OperationalError | InterfaceError) -> Response:
        # The driver could not reach the database (down, restarting, connection cut): like a
        # dead broker, a 503 the client may retry, not an unexpected 500. The failed statement's
        # transaction did not commit.
        logger.warning("database unreachable: %s", type(exc.orig).__name__)
        return error_response(
            503,
            "database_unavailable",
            "the database is unreachable; try again shortly",
            headers={"Retry-After": "5"},
        )

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        headers = {}
        if status == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        return error_response(status, _code_for(exc), exc.description or exc.name, None, headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        logger.exception("unhandled error")
        return error_response(500, "internal_error", "an unexpected error occurred; it was logged")
