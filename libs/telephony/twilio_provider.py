"""Twilio through the official SDK; ``TWILIO_API_BASE`` points it at the local simulator."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from libs.common.settings import Settings

TWILIO_API_HOST = "https://api.twilio.com"

#: How long one request to the provider may take (connect, then read): a create still in flight
#: after this is abandoned by the SDK, which bounds how long a placing worker can be undecided.
REQUEST_TIMEOUT_S = 10.0

#: Twilio error codes that mean "try again later": nothing was created.
RETRYABLE_CODES = frozenset({20429, 10004})


class RebasedHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """The SDK's own HTTP client, with api.twilio.com replaced by another base URL."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.base_url = base_url.rstrip("/")

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if url.startswith(TWILIO_API_HOST):
            url = self.base_url + url[len(TWILIO_API_HOST) :]
        return super().request(method, url, *args, **kwargs)


@dataclass(frozen=True)
class ProviderError(Exception):
    """The provider refused a request; ``retryable`` says whether trying again is safe."""

    code: str
    message: str
    retryable: bool
    http_status: int | None = None

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def make_client(settings: Settings, timeout: float = REQUEST_TIMEOUT_S) -> Client:
    if not (settings.twilio_account_sid and settings.twilio_auth_token):
        raise RuntimeError("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are needed to place calls")
    http_client = (
        RebasedHttpClient(settings.twilio_api_base, timeout)
        if settings.twilio_api_base
        else TwilioHttpClient(timeout=timeout)
    )
    _keep_alive(http_client, settings.twilio_api_base or TWILIO_API_HOST)
    return Client(settings.twilio_account_sid, settings.twilio_auth_token, http_client=http_client)


#: Connections kept per provider host: a worker's dispatch threads and placing threads each
#: create calls at once (requests' default for http:// is 10; past it, connections are opened
#: and thrown away per request).
POOL_SIZE = 32


def _keep_alive(http_client: TwilioHttpClient, base_url: str) -> None:
    """One pooled, kept-alive session whose environment is read once: requests reads the proxy
    variables (and netrc, and the CA bundle variables) on every request otherwise, a twentieth
    of a placing worker's CPU per call. What it would read, it is given here."""
    session = http_client.session
    if session is None:
        return
    adapter = HTTPAdapter(pool_connections=2, pool_maxsize=POOL_SIZE)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.trust_env = False
    session.proxies.update(get_environ_proxies(base_url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle


def provider_error(exc: TwilioRestException) -> ProviderError:
    code = int(exc.code) if exc.code else None
    retryable = exc.status == 429 or code in RETRYABLE_CODES or (exc.status or 0) >= 500
    return ProviderError(
        code=str(code or exc.status),
        message=str(exc.msg or exc)[:500],
        retryable=retryable,
        http_status=exc.status,
    )
