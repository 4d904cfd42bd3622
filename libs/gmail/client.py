"""The Gmail API client: google-api-python-client with the static discovery document.

Pointing ``GMAIL_API_ENDPOINT`` and ``GOOGLE_TOKEN_URI`` at the simulator changes nothing else:
the same SDK code paths run against it and against Google.
"""

from __future__ import annotations

from typing import Any

from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build

from libs.common.settings import Settings
from libs.gmail.oauth import SCOPE


def credentials(settings: Settings, refresh_token: str) -> Credentials:
    # token=None: the first request refreshes it; google-auth refreshes again when it expires.
    return Credentials(  # type: ignore[no-untyped-call]
        token=None,
        refresh_token=refresh_token,
        token_uri=settings.google_token_uri,
        client_id=settings.google_client_id,
        client_secret=settings.google_client_secret,
        scopes=[SCOPE],
    )


def gmail_service(settings: Settings, refresh_token: str) -> Any:
    options = {"api_endpoint": settings.gmail_api_endpoint} if settings.gmail_api_endpoint else None
    return build(
        "gmail",
        "v1",
        credentials=credentials(settings, refresh_token),
        static_discovery=True,
        cache_discovery=False,
        client_options=options,
    )
