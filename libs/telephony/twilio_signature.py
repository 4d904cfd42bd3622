"""X-Twilio-Signature checks against the public URL Twilio signed (we sit behind nginx)."""

from __future__ import annotations

from collections.abc import Mapping

from twilio.request_validator import RequestValidator


def public_url(public_base_url: str, path: str, query_string: str) -> str:
    """The URL as Twilio saw it: configured public base, never one rebuilt from headers."""
    url = public_base_url.rstrip("/") + path
    return f"{url}?{query_string}" if query_string else url


def websocket_url(public_base_url: str, path: str) -> str:
    """The wss:// (or ws://) URL of a stream: Twilio signs the upgrade request against it."""
    base = public_base_url.rstrip("/")
    scheme, rest = base.split("://", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}{path}"


def is_valid(auth_token: str, url: str, params: Mapping[str, str], signature: str | None) -> bool:
    if not signature:
        return False
    return bool(RequestValidator(auth_token).validate(url, dict(params), signature))


def sign(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """What Twilio would send: used by the simulator and tests, the same algorithm."""
    return str(RequestValidator(auth_token).compute_signature(url, dict(params)))
