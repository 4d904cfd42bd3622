"""Input no model should see: bodies nested too deep, text the database cannot store."""

from __future__ import annotations

from typing import Any

from libs.web.errors import ApiError


def bad_request(message: str, details: Any = None) -> ApiError:
    return ApiError(400, "bad_request", message, details=details)


#: Row ids are BIGINT: a larger number cannot name a row (and would fail in the database).
MAX_ROW_ID = 2**63 - 1


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
