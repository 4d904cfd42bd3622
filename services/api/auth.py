"""Bearer-token authentication: business tokens see their business, operator tokens the platform."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import current_app, g, request

from libs.common import repositories
from libs.common.models import TokenRole
from libs.web.db import get_session
from libs.web.errors import ApiError
from services.api.spec import audience_of

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Principal:
    token_id: int
    role: TokenRole
    business_id: int | None

    @property
    def is_operator(self) -> bool:
        return self.role is TokenRole.OPERATOR


def _unauthorized(message: str) -> ApiError:
    return ApiError(
        401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="api"'}
    )


def authenticate() -> None:
    """before_request hook: sets ``g.principal`` or answers 401, then 403 when the route's
    declared audience (``answers(auth=...)``) is not the token's role. Public routes (health,
    the OpenAPI document, Google's OAuth redirect, whose signed state names the business)
    need no token."""
    audience = audience_of(current_app.view_functions.get(request.endpoint or ""))
    if audience == "public" or request.method == "OPTIONS":
        return
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if not header:
        raise _unauthorized("missing Authorization header; send 'Authorization: Bearer <token>'")
    if scheme.lower() != "bearer" or not secret.strip():
        raise _unauthorized("the Authorization header must be 'Bearer <token>'")
    token = repositories.find_active_token(get_session(), secret.strip())
    if token is None:
        raise _unauthorized("the token is unknown or revoked")
    principal = g.principal = Principal(token.id, token.role, token.business_id)
    if audience == "operator" and not principal.is_operator:
        raise ApiError(403, "forbidden", "this endpoint needs an operator token")
    if audience == "business" and principal.business_id is None:
        raise _needs_business_token()


def current_principal() -> Principal:
    principal: Principal = g.principal
    return principal


def current_business_id() -> int:
    """The caller's business; business data endpoints refuse operator tokens (no business)."""
    principal = current_principal()
    if principal.business_id is None:  # a route for "any" token reading a business's data
        raise _needs_business_token()
    return principal.business_id


def _needs_business_token() -> ApiError:
    return ApiError(
        403, "forbidden", "this endpoint needs a business token (operator tokens have none)"
    )
