"""Google's OAuth 2.0 endpoints as a web-server app sees them: consent, token, revoke.

Consent auto-approves (there is no user to click), but everything after it is checked the
way Google checks it: single-use codes bound to their redirect_uri, client credentials on
every grant, revocation that takes the refresh token's access tokens with it.
"""

from __future__ import annotations

import html
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode

from flask import Flask, Response, jsonify, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from simulators.gmail.quota import Quota

DEFAULT_SCOPE = "https://www.googleapis.com/auth/gmail.readonly"
DEFAULT_ACCOUNT = "owner@example.com"
ACCESS_TOKEN_TTL_S = 3599
REVOKED = "Token has been expired or revoked."
#: Token-endpoint calls are counted (not charged) so a test can see every refresh.
COUNTED_GRANTS = {
    "refresh_token": "token.refresh",
    "authorization_code": "token.authorization_code",
}


class OAuthError(Exception):
    """An error as Google's token endpoint sends it: google-auth turns it into RefreshError."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.status, self.error, self.description = status, error, description

    def response(self) -> Response:
        response = jsonify({"error": self.error, "error_description": self.description})
        response.status_code = self.status
        return response


@dataclass(frozen=True)
class Grant:
    """One consent: a refresh token for an account and the scopes it allows."""

    email: str
    scope: str
    refresh_token: str


@dataclass(frozen=True)
class PendingCode:
    grant: Grant
    redirect_uri: str


@dataclass(frozen=True)
class AccessToken:
    token: str
    grant: Grant
    expires_at: float


class Authority:
    """The authorization server's memory: codes, grants and live access tokens."""

    def __init__(self, client_id: str, client_secret: str) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.lock = threading.Lock()
        self.consent_denied = False
        self.codes: dict[str, PendingCode] = {}
        self.grants: dict[str, Grant] = {}
        self.access: dict[str, AccessToken] = {}

    def check_client(self, client_id: str | None, client_secret: str | None) -> None:
        if not client_id:
            raise OAuthError(400, "invalid_request", "Could not determine client ID from request.")
        if client_id != self.client_id:
            raise OAuthError(401, "invalid_client", "The OAuth client was not found.")
        if client_secret != self.client_secret:
            raise OAuthError(401, "invalid_client", "Unauthorized")

    def issue(self, email: str, scope: str = DEFAULT_SCOPE) -> Grant:
        grant = Grant(email.lower(), scope, "1//0" + secrets.token_urlsafe(48))
        with self.lock:
            self.grants[grant.refresh_token] = grant
        return grant

    def consent(self, email: str, scope: str, redirect_uri: str) -> str:
        code = "4/0" + secrets.token_urlsafe(40)
        grant = self.issue(email, scope)
        with self.lock:
            self.codes[code] = PendingCode(grant, redirect_uri)
        return code

    def _access_token(self, grant: Grant) -> dict[str, Any]:
        expires_at = time.time() + ACCESS_TOKEN_TTL_S
        token = AccessToken("ya29." + secrets.token_urlsafe(64), grant, expires_at)
        self.access[token.token] = token
        return {
            "access_token": token.token,
            "expires_in": ACCESS_TOKEN_TTL_S,
            "scope": grant.scope,
            "token_type": "Bearer",
        }

    def exchange(self, code: str | None, redirect_uri: str | None) -> dict[str, Any]:
        with self.lock:
            pending = self.codes.pop(code or "", None)  # single use, even when it then fails
            if pending is None or pending.grant.refresh_token not in self.grants:
                raise OAuthError(400, "invalid_grant", "Bad Request")
            if redirect_uri != pending.redirect_uri:
                raise OAuthError(400, "redirect_uri_mismatch", "Bad Request")
            body = self._access_token(pending.grant)
        body["refresh_token"] = pending.grant.refresh_token
        return body

    def refresh(self, refresh_token: str | None) -> dict[str, Any]:
        with self.lock:
            grant = self.grants.get(refresh_token or "")
            if grant is None:
                raise OAuthError(400, "invalid_grant", REVOKED)
            return self._access_token(grant)

    def revoke(self, token: str) -> bool:
        """Revoke an access or refresh token; either way the whole grant goes, as at Google."""
        with self.lock:
            access = self.access.get(token)
            grant = access.grant if access else self.grants.get(token)
            if grant is None:
                return False
            self.grants.pop(grant.refresh_token, None)
            self.access = {k: v for k, v in self.access.items() if v.grant != grant}
            return True

    def revoke_all(self) -> None:
        with self.lock:
            self.grants.clear()
            self.access.clear()

    def expire_access(self) -> None:
        """Every access token stops working; refresh tokens still get new ones."""
        with self.lock:
            self.access.clear()

    def authenticate(self, authorization: str) -> AccessToken | None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return None
        with self.lock:
            access = self.access.get(token.strip())
        if access is None or access.expires_at <= time.time():
            return None
        return access

    def reset(self) -> None:
        self.revoke_all()
        with self.lock:
            self.codes.clear()
            self.consent_denied = False


def _error_page(status: int, title: str, detail: str) -> tuple[str, int]:
    """The dead end Google shows in the browser: nothing is redirected to the app."""
    body = f"<html><body><h1>{html.escape(title)}</h1><p>{html.escape(detail)}</p></body></html>"
    return body, status


def _client_credentials() -> tuple[str | None, str | None]:
    """From HTTP Basic auth when present (URL-encoded, per RFC 6749), else the form."""
    auth = request.authorization
    if auth is not None and auth.type == "basic" and auth.username:
        return unquote(auth.username), unquote(auth.password or "")
    return request.form.get("client_id"), request.form.get("client_secret")


def register(app: Flask, authority: Authority, quota: Quota) -> None:
    """Add Google's consent (/o/oauth2/v2/auth), /token and /revoke endpoints to ``app``."""

    @app.get("/o/oauth2/v2/auth")
    @app.get("/o/oauth2/auth")
    def consent() -> BaseResponse | tuple[str, int]:
        args = request.args
        if args.get("client_id") != authority.client_id:
            return _error_page(400, "Error 401: invalid_client", "The OAuth client was not found.")
        redirect_uri = args.get("redirect_uri")
        if not redirect_uri:
            return _error_page(400, "Error 400: invalid_request", "Missing redirect_uri")
        if args.get("response_type") != "code":
            return _error_page(400, "Error 400: invalid_request", "Unsupported response_type")
        reply: dict[str, str] = {}
        if authority.consent_denied:
            reply["error"] = "access_denied"
        else:
            email = args.get("login_hint") or DEFAULT_ACCOUNT
            scope = args.get("scope") or DEFAULT_SCOPE
            reply["code"] = authority.consent(email, scope, redirect_uri)
            reply["scope"] = scope
        if "state" in args:
            reply["state"] = args["state"]
        separator = "&" if "?" in redirect_uri else "?"
        return redirect(f"{redirect_uri}{separator}{urlencode(reply)}", code=302)

    @app.post("/token")
    def token() -> Response:
        form = request.form
        grant_type = form.get("grant_type", "")
        if grant_type in COUNTED_GRANTS:
            quota.count(COUNTED_GRANTS[grant_type])
        try:
            authority.check_client(*_client_credentials())
            if grant_type == "authorization_code":
                body = authority.exchange(form.get("code"), form.get("redirect_uri"))
            elif grant_type == "refresh_token":
                body = authority.refresh(form.get("refresh_token"))
            else:
                raise OAuthError(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        except OAuthError as exc:
            return exc.response()
        response = jsonify(body)
        response.headers["Cache-Control"] = "no-cache, no-store, max-age=0, must-revalidate"
        return response

    @app.route("/revoke", methods=["GET", "POST"])
    def revoke() -> Response:
        token = request.values.get("token", "")
        if not authority.revoke(token):
            return OAuthError(400, "invalid_token", "Token expired or revoked").response()
        return jsonify({})
