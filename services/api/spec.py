"""The API's schema layer: each route declares its pydantic models once, with ``@api.validate``.

spectree (chosen by measurement: bench/api_layers.py, docs/api.md) validates the query and the
JSON body against them before the view runs, serializes the model the view returns, and builds
``/api/openapi.json`` from the same models. A validation error becomes our usual 400
``{"error": {"code": "bad_request", "message": "<field>: <reason>"}}``.

JSON bodies are read once, before any model sees them, by ``read_json_body``: a body nested
deeper than 32 levels, text the database cannot store, or anything but an object is a cheap 400
(libs/web/validation.py) whatever the route.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask import request
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from spectree import Response, SecurityScheme, SecuritySchemeData, SpecTree
from spectree.models import SecureType
from spectree.plugins import flask_plugin
from spectree.plugins.base import Context
from spectree.utils import get_multidict_items

from libs.web.errors import ApiError
from libs.web.validation import MAX_JSON_DEPTH, bad_request, storable
from services.api.schemas import HHMM, Error

#: Patterns a person knows by another name.
PATTERN_NAMES = {HHMM: "HH:MM (24-hour)", "@": "an email address"}

#: What each error status means on any route; a route may say more with (status, text).
ERRORS: dict[int, str] = {
    400: "invalid input; the message names the field and why",
    401: "missing, malformed, unknown or revoked token",
    403: "the token's role may not use this endpoint",
    404: "no such resource for this business",
    409: "the resource's current state does not allow this",
    413: "the upload is too large",
    429: "past the limit per minute; see the Retry-After header",
    503: "the job queue is unreachable (code queue_unavailable); nothing was written",
}
#: The error statuses every route may answer, by who may call it.
AUTH_ERRORS: dict[str, tuple[int, ...]] = {
    "public": (),
    "any": (401,),
    "business": (401, 403),
    "operator": (401, 403),
}

_NAMES: dict[str, type] = {}


def _component_name(model: type) -> str:
    """Components are named by class; two models with one name would silently share a schema."""
    name = model.__name__
    if _NAMES.setdefault(name, model) is not model:
        raise TypeError(f"two API models are named {name}: {_NAMES[name]} and {model}")
    return name


def _field(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path


#: pydantic's error types, phrased as this API always phrased them ("<field> must be ...").
_PHRASES = {
    "missing": "is required",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be an array",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "date_type": "must be a date, YYYY-MM-DD",
    "date_parsing": "must be a date, YYYY-MM-DD",
    "date_from_datetime_parsing": "must be a date, YYYY-MM-DD",
    "decimal_parsing": "must be a decimal amount, e.g. 12.50",
    "decimal_type": "must be a decimal amount, e.g. 12.50",
    "finite_number": "must be a decimal amount, e.g. 12.50",
}


def describe(problem: ErrorDetails) -> str:
    """One pydantic error in this API's words, naming its field: ``window.start must match
    ^...$``, ``lead_ids[0] must be an integer``, ``phone: '12' is not a valid phone number``."""
    field = _field(tuple(problem["loc"]))
    kind = problem["type"]
    if kind == "value_error":
        reason = str(problem["ctx"]["error"])  # our own validators' words
        # A domain check may name the field itself ("local_time must be HH:MM").
        if not field or reason.startswith(field.rsplit(".", 1)[-1]):
            return reason
        return f"{field}: {reason}"
    if kind == "extra_forbidden":
        return f"unknown fields: {field}"
    if kind == "literal_error":
        reason = f"must be one of: {problem['ctx']['expected']}, not {problem['input']!r}"
    elif kind == "string_pattern_mismatch":
        pattern = problem["ctx"]["pattern"]
        reason = (
            f"must be {PATTERN_NAMES[pattern]}"
            if pattern in PATTERN_NAMES
            else (f"must match {pattern}")
        )
    elif kind in ("too_short", "too_long", "string_too_short", "string_too_long"):
        bound = "at least" if kind.endswith("short") else "at most"
        limit = problem["ctx"]["min_length" if kind.endswith("short") else "max_length"]
        kind_of = "a string" if kind.startswith("string") else "an array"
        unit = "characters" if kind.startswith("string") else "items"
        reason = f"must be {kind_of} of {bound} {limit} {unit}"
    elif kind in ("greater_than_equal", "less_than_equal"):
        bound = "at least" if kind == "greater_than_equal" else "at most"
        reason = f"must be {bound} {problem['ctx']['ge' if bound == 'at least' else 'le']}"
    else:
        reason = _PHRASES.get(kind) or problem["msg"][0].lower() + problem["msg"][1:]
    return f"{field} {reason}" if field else reason


def error_message(error: ValidationError) -> str:
    return describe(error.errors(include_url=False)[0])


def _bad_request(req: Any, resp: Any, error: Exception | None, *_: Any) -> None:
    if isinstance(error, ValidationError):
        raise bad_request(error_message(error))


class FlaskPlugin(flask_plugin.FlaskPlugin):
    """spectree's Flask plugin, reading headers and cookies only for a route that declares a
    model for them (none does here). Upstream copies every header and parses the cookies on
    each request whether a model wants them or not: a fifth of its own cost on GET /api/me
    (profiled with bench/api_layers.py; docs/api.md)."""

    def request_validation(
        self, request: Any, query: Any, json: Any, form: Any, headers: Any, cookies: Any
    ) -> None:
        adapter = self.model_adapter
        with_body = request.method not in ("GET", "DELETE")
        is_form = request.mimetype in self.FORM_MIMETYPE
        request.context = Context(
            adapter.validate_obj(query, get_multidict_items(request.args, query))
            if query
            else None,
            # Flask caches the body read_json_body parsed (and refused if unfit).
            adapter.validate_obj(json, request.get_json(silent=True) or {})
            if json and with_body and not is_form
            else None,
            adapter.validate_obj(form, self.fill_form(request))
            if form and with_body and is_form
            else None,
            adapter.validate_obj(headers, dict(request.headers)) if headers else None,
            adapter.validate_obj(cookies, get_multidict_items(request.cookies))
            if cookies
            else None,
        )


class SwitchboardSpec(SpecTree):
    """SpecTree whose ``validate`` also tags the view with the audience its answers declare,
    and leaves public routes out of the bearer security requirement.

    The audience (``answers(auth=...)``: ``business``, ``operator``, ``any`` or ``public``) is
    declared once per route: it documents the route's 401/403 and is what
    ``services.api.auth.authenticate`` enforces before the route's models read the request, so
    a token of the wrong role is a 403 whatever the body."""

    # Keyword arguments only (as every route passes them), hence the narrower signature.
    def validate(  # type: ignore[override]
        self, resp: Response | None = None, **kwargs: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        audience = getattr(resp, "audience", "business")
        if audience == "public":
            kwargs.setdefault("security", {})
        decorate = super().validate(resp=resp, **kwargs)

        # Typed as returning Any, as spectree's own: a route returns models, which the
        # validation turns into the Flask response.
        def tag(view: Callable[..., Any]) -> Callable[..., Any]:
            validated: Callable[..., Any] = decorate(view)
            validated.audience = audience  # type: ignore[attr-defined]
            return validated

        return tag


def audience_of(view: Any) -> str:
    """The audience a view was declared for (``openapi.json`` is public; undeclared views are
    for business tokens, the narrowest audience that still needs a token)."""
    return str(getattr(view, "audience", "business"))


api = SwitchboardSpec(
    "flask",
    backend=FlaskPlugin,
    mode="strict",  # only routes declared here are documented: a test finds any other
    # The document is served by the api blueprint (GET /api/openapi.json, see
    # openapi_document); spectree's own route and UI pages are not registered.
    path="apidoc",
    title="Switchboard API",
    version="0.1.0",
    description='REST API for the Switchboard SPA and operators. Errors are `{"error": '
    '{"code", "message"}}`, the message naming the field. Send `Authorization: Bearer <token>`.',
    security_schemes=[
        SecurityScheme(
            name="bearer", data=SecuritySchemeData(type=SecureType.HTTP, scheme="bearer")
        )
    ],
    security={"bearer": []},
    annotations=True,
    before=_bad_request,
    validation_error_status=400,
    validation_error_model=Error,
    naming_strategy=_component_name,
    nested_naming_strategy=lambda _parent, child: child,
)


def answers(
    ok: Mapping[int, type[BaseModel] | str | tuple[type[BaseModel], str]],
    *errors: int | tuple[int, str],
    auth: str = "business",
) -> Response:
    """A route's documented answers: its successes (a model, a description for a body-less
    answer, or both as a tuple), the errors it may give (``404``, or ``(409, "what it means
    here")``), and those of its audience: ``business`` (401, and 403 for operator tokens),
    ``operator``, ``any`` or ``public``. 400 is always one: any request may be malformed."""
    codes: dict[str, Any] = {}
    for status, model in ok.items():
        codes[f"HTTP_{status}"] = (None, model) if isinstance(model, str) else model
    # Any request may be a 400 (a NUL in the query string, a malformed body).
    for item in (400, *AUTH_ERRORS[auth], *errors):
        status, text = item if isinstance(item, tuple) else (item, ERRORS[item])
        codes[f"HTTP_{status}"] = (Error, text)
    response = Response(**codes)
    response.audience = auth  # type: ignore[attr-defined]  # read by SwitchboardSpec.validate
    return response


def read_json_body() -> None:
    """before_request of /api: a JSON body is parsed here once (Flask caches it for the models)
    and refused early when it is too deep, not an object, or holds unstorable text."""
    if not request.is_json or not request.content_length:
        return
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        # The parser recursed once per level (100,000 nested arrays, or unclosed objects) and
        # hit the interpreter's limit after ~1,000 levels: cheap, and plainly too deep.
        raise bad_request(f"the body nests deeper than {MAX_JSON_DEPTH} levels") from None
    if not isinstance(body, dict):  # None: not JSON at all
        raise bad_request("the body must be a JSON object (Content-Type: application/json)")
    storable(body)


__all__ = ["ApiError", "answers", "api", "audience_of", "read_json_body"]
