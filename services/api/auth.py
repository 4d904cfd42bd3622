"""Bearer-token authentication: business tokens see their business, operator tokens the platform."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import g, request

from libs.common import repositories
from libs.common.models import TokenRole
from libs.common.web.db import get_session
from libs.common.web.errors import ApiError

F = TypeVar("F", bound=Callable[..., Any])

#: Routes under /api that answer without a token. Google's OAuth redirect brings the browser to
#: the Gmail callback with no token: its signed single-use state names the business instead.
PUBLIC_ENDPOINTS = {"api.openapi", "api.healthz", "api.readyz", "api.gmail.callback"}


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
    """before_request hook: sets ``g.principal`` or answers 401."""
    if request.endpoint in PUBLIC_ENDPOINTS or request.method == "OPTIONS":
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
    g.principal = Principal(token.id, token.role, token.business_id)


def current_principal() -> Principal:
    principal: Principal = g.principal
    return principal


def current_business_id() -> int:
    """The caller's business; business data endpoints refuse operator tokens (no business)."""
    principal = current_principal()
    if principal.business_id is None:
        raise ApiError(
            403, "forbidden", "this endpoint needs a business token (operator tokens have none)"
        )
    return principal.business_id


def operator_required(view: F) -> F:
    """Platform-wide endpoints: business tokens get 403."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not current_principal().is_operator:
            raise ApiError(403, "forbidden", "this endpoint needs an operator token")
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
