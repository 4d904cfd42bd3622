"""Connecting a Gmail inbox: the consent request, Google's callback, the connections."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from services.api.schemas import Query, Shape


class ConsentQuery(Query):
    login_hint: str | None = Field(
        None, max_length=320, pattern="@", description="the Gmail address to preselect"
    )


class ConsentUrl(Shape):
    url: str = Field(description="open this URL in the browser")


class CallbackQuery(Query):
    """What Google adds to the redirect (the browser's request: no token)."""

    state: str = Field("", max_length=4096, description="from /api/gmail/connect")
    code: str = Field("", max_length=4096)
    error: str = Field("", max_length=256, description="e.g. access_denied")


class GmailConnection(Shape):
    id: int
    email: str
    status: Literal["connected", "needs_reauth"] = Field(
        description="needs_reauth: Google refused the token; connect the inbox again"
    )
    sync_job_id: int | None = Field(
        description="the latest sync's BackgroundJob (GET /api/jobs/{id})"
    )
    last_synced_at: dt.datetime | None
    last_error: str | None
    created_at: dt.datetime


class GmailConnections(Shape):
    items: list[GmailConnection]
