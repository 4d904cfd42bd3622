"""Reading request input with clear 400s: JSON bodies, integers, pagination."""

from __future__ import annotations

from typing import Any

from flask import request

from libs.common.web.errors import ApiError


def bad_request(message: str, details: Any = None) -> ApiError:
    return ApiError(400, "bad_request", message, details=details)


#: Row ids are BIGINT: a larger number cannot name a row (and would fail in the database).
MAX_ROW_ID = 2**63 - 1


def row_id(value: Any, name: str) -> int:
    if type(value) is not int or not 0 < value <= MAX_ROW_ID:
        raise bad_request(f"{name} must be a positive integer id")
    return value


def storable(value: Any, where: str = "body") -> Any:
    """Reject text the database cannot store: NUL characters and lone UTF-16 surrogates
    (valid JSON escapes both, PostgreSQL takes neither; found by schemathesis as 500s)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise bad_request(f"{where}: text must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise bad_request(f"{where}: text is not valid Unicode (lone surrogate)") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            storable(key, where)
            storable(item, f"{where}.{key}"[:80])
    elif isinstance(value, list):
        for item in value:
            storable(item, where)
    return value


def json_object() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object (Content-Type: application/json)")
    return storable(body)  # type: ignore[no-any-return]


def optional_json_object() -> dict[str, Any]:
    """An optional body: none at all is {}; anything else must be a JSON object."""
    if not request.content_length:
        return {}
    return json_object()


def optional_int(body: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if type(value) is not int or not low <= value <= high:
        raise bad_request(f"{name} must be an integer from {low} to {high}")
    return value


def query_int(name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.lstrip("-").isdigit() or not low <= int(raw) <= high:
        raise bad_request(f"query parameter {name} must be an integer from {low} to {high}")
    return int(raw)


def pagination(max_per_page: int = 200) -> tuple[int, int]:
    page = query_int("page", 1, 1, 1_000_000) or 1
    per_page = query_int("per_page", 50, 1, max_per_page) or 50
    return page, per_page


def query_choice(name: str, allowed: set[str]) -> str | None:
    value = request.args.get(name)
    if value in (None, ""):
        return None
    if value not in allowed:
        raise bad_request(f"query parameter {name} must be one of: {', '.join(sorted(allowed))}")
    return value
