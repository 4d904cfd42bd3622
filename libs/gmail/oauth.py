"""Google's OAuth 2.0 web flow for Gmail: consent URL, code exchange, revocation, and the
``state`` that binds a consent to the business that asked for it.

The state is signed (a forged or altered one is refused before anything else) and carries a
nonce that is usable once: the nonce is stored in Redis when the consent URL is made and taken
(GETDEL) by the callback, so a replayed callback is refused too. The nonce is also set as a
cookie in the browser that asked (``BROWSER_COOKIE``): a consent link sent to someone else's
browser cannot connect *their* inbox to the sender's business.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import redis
import requests
from itsdangerous import BadSignature, URLSafeTimedSerializer

from libs.common.crypto import SecretBox
from libs.common.settings import Settings

SCOPE = "https://www.googleapis.com/auth/gmail.readonly"
CALLBACK_PATH = "/api/gmail/callback"
BROWSER_COOKIE = "sb_gmail_consent"
STATE_MAX_AGE_S = 600
TIMEOUT_S = 15


class OAuthError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Grant:
    refresh_token: str
    access_token: str
    scope: str


def redirect_uri(settings: Settings) -> str:
    return settings.public_base_url + CALLBACK_PATH


def _serializer(box: SecretBox) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(box.derive("gmail-oauth-state"), salt="gmail-oauth-state")


def make_state(box: SecretBox, redis_client: redis.Redis, business_id: int) -> tuple[str, str]:
    """(state, nonce): the nonce goes to the asking browser as the BROWSER_COOKIE."""
    nonce = secrets.token_urlsafe(16)
    redis_client.set(f"gmail-oauth-state:{nonce}", business_id, ex=STATE_MAX_AGE_S)
    return str(_serializer(box).dumps({"b": business_id, "n": nonce})), nonce


def take_state(box: SecretBox, redis_client: redis.Redis, state: str,
               browser_nonce: str | None) -> int:  # fmt: skip
    """The business the consent was for; OAuthError if forged, expired, already used, or
    come back to another browser than the one that asked."""
    try:
        data: Any = _serializer(box).loads(state, max_age=STATE_MAX_AGE_S)
    except BadSignature:
        raise OAuthError("invalid_state", "the OAuth state is forged, altered or expired") from None
    if not isinstance(data, dict) or not isinstance(data.get("b"), int):
        raise OAuthError("invalid_state", "the OAuth state is malformed")
    if not browser_nonce or not secrets.compare_digest(str(data.get("n")), browser_nonce):
        raise OAuthError(
            "invalid_state",
            "this consent was started in another browser: connect Gmail from the console again",
        )
    stored = redis_client.getdel(f"gmail-oauth-state:{data.get('n')}")
    if stored is None or int(stored) != data["b"]:
        raise OAuthError("invalid_state", "the OAuth state was already used or has expired")
    return int(data["b"])


def consent_url(settings: Settings, state: str, login_hint: str | None = None) -> str:
    params = {
        "client_id": settings.google_client_id or "",
        "redirect_uri": redirect_uri(settings),
        "response_type": "code",
        "scope": SCOPE,
        "state": state,
        # offline + consent: Google returns a refresh token, also on a reconnect.
        "access_type": "offline",
        "prompt": "consent",
        "include_granted_scopes": "true",
    }
    if login_hint:
        params["login_hint"] = login_hint
    return f"{settings.google_auth_uri}?{urlencode(params)}"


def exchange_code(settings: Settings, code: str) -> Grant:
    response = requests.post(
        settings.google_token_uri,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri(settings),
            "client_id": settings.google_client_id or "",
            "client_secret": settings.google_client_secret or "",
        },
        timeout=TIMEOUT_S,
    )
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or not isinstance(body, dict):
        error = body.get("error", "oauth_error") if isinstance(body, dict) else "oauth_error"
        raise OAuthError(str(error), f"Google refused the authorization code ({error})")
    if not body.get("refresh_token"):
        raise OAuthError("no_refresh_token", "Google returned no refresh token")
    return Grant(body["refresh_token"], body.get("access_token", ""), body.get("scope", SCOPE))


def revoke(settings: Settings, token: str) -> bool:
    """Best effort: the tokens are deleted here whatever Google answers."""
    revoke_uri = settings.google_token_uri.rsplit("/", 1)[0] + "/revoke"
    try:
        # In the body, not the query string: URLs end up in access logs, bodies do not.
        response = requests.post(revoke_uri, data={"token": token}, timeout=TIMEOUT_S)
    except requests.RequestException:
        return False
    return response.status_code == 200
