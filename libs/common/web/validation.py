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


def bounded_text(value: Any, name: str, max_length: int, min_length: int = 0) -> str:
    """A string field of documented length (the OpenAPI's maxLength); else a 400 naming it."""
    if not isinstance(value, str) or not min_length <= len(value) <= max_length:
        least = f"{min_length} to " if min_length else "at most "
        raise bad_request(f"{name} must be a string of {least}{max_length} characters")
    return value


#: The deepest nesting of arrays and objects a JSON body may have (the API's own bodies nest
#: three levels). The parser and any walk over the result recurse per level, so deeper input
#: would end in a RecursionError (a 500) instead of a 400.
MAX_JSON_DEPTH = 32
#: No field name in the API is longer; error messages echo names, so longer ones stop here.
MAX_KEY_LENGTH = 100


def _check_text(text: str, where: str) -> None:
    if "\x00" in text:
        raise bad_request(f"{where}: text must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_request(f"{where}: text is not valid Unicode (lone surrogate)") from None


def storable(value: Any, where: str = "body") -> Any:
    """Reject text the database cannot store (NUL characters, lone UTF-16 surrogates: found by
    schemathesis as 500s), nesting deeper than MAX_JSON_DEPTH and overlong field names.
    Iterative: no input can exhaust the stack."""
    pending: list[tuple[Any, str, int]] = [(value, where, 0)]
    while pending:
        item, at, depth = pending.pop()
        if isinstance(item, str):
            _check_text(item, at)
        elif isinstance(item, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise bad_request(f"{at}: nested deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(item, list):
                pending.extend((element, at, depth + 1) for element in item)
                continue
            for key, element in item.items():
                if isinstance(key, str):
                    if len(key) > MAX_KEY_LENGTH:
                        raise bad_request(
                            f"{at}: field names are at most {MAX_KEY_LENGTH} characters"
                        )
                    _check_text(key, at)
                pending.append((element, f"{at}.{key}"[:80], depth + 1))
    return value


def json_object() -> dict[str, Any]:
    """The body as a JSON object, checked by storable; every JSON body is read here."""
    try:
        body = request.get_json(silent=True)  # silent covers ValueError only
    except RecursionError:
        # The parser recursed once per level (100,000 nested arrays, or unclosed objects) and
        # hit the interpreter's limit after ~1,000 levels: cheap, and plainly too deep.
        raise bad_request(f"the body nests deeper than {MAX_JSON_DEPTH} levels") from None
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
