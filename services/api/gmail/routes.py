"""Connecting a Gmail inbox: the consent URL, Google's callback, the business's connections.

The callback is the one business route without a bearer token: Google sends the browser back
with no Authorization header, so the signed, single-use ``state`` made by /gmail/connect is
what names the business. The authorization code and the tokens are never logged.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlencode

import httplib2
import redis
import requests
from flask import Blueprint, Response, current_app, jsonify, redirect, request
from google.auth.exceptions import GoogleAuthError
from googleapiclient.errors import HttpError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response as BaseResponse

from libs.common.crypto import InvalidToken, SecretBox, secret_box
from libs.common.models import BackgroundJob, GmailConnection, JobStatus, utcnow
from libs.common.redis_client import shared_redis
from libs.common.settings import Settings
from libs.gmail import oauth
from libs.gmail.client import gmail_service
from libs.web.db import get_session, writes
from libs.web.errors import ApiError
from services.api.auth import current_business_id
from services.api.gmail.schemas import CallbackQuery, ConsentQuery, ConsentUrl, GmailConnections
from services.api.gmail.schemas import GmailConnection as Connection
from services.api.spec import answers, api

logger = logging.getLogger(__name__)

blueprint = Blueprint("gmail", __name__)

#: The SPA page the browser lands on after the consent; the query says how it went.
SPA_RECEIPTS_PATH = "/receipts"
#: What can go wrong reading the account's address with a fresh grant.
_PROFILE_ERRORS = (
    HttpError,
    GoogleAuthError,
    httplib2.HttpLib2Error,
    OSError,
    KeyError,
    TypeError,
    ValueError,
)


def _settings() -> Settings:
    settings: Settings = current_app.config["SETTINGS"]
    return settings


def _configured() -> Settings:
    settings = _settings()
    if not (settings.google_client_id and settings.google_client_secret):
        raise ApiError(
            503,
            "gmail_not_configured",
            "Gmail is not configured on this server: set GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET",
        )
    return settings


def _box(settings: Settings) -> SecretBox:
    # Once per app: in development it reads (or creates) the key file under var/.
    box: SecretBox | None = current_app.extensions.get("secret_box")
    if box is None:
        box = current_app.extensions["secret_box"] = secret_box(settings)
    return box


def _state_store(settings: Settings) -> redis.Redis:
    if not settings.redis_url:
        raise _redis_down()
    return shared_redis(settings.redis_url, settings.broker_check_timeout_s)


def _redis_down() -> ApiError:
    return ApiError(
        503,
        "redis_unavailable",
        "the OAuth state store (Redis) is unreachable; try again shortly",
        headers={"Retry-After": "5"},
    )


def _back_to_spa(outcome: str, reason: str | None = None) -> BaseResponse:
    query = {"gmail": outcome}
    if reason:
        # Google's error codes are short identifiers; anything else is flattened to one.
        query["reason"] = re.sub(r"[^a-z0-9_]", "_", reason.lower())[:64]
    target = f"{_settings().public_base_url}{SPA_RECEIPTS_PATH}?{urlencode(query)}"
    response = redirect(target, code=302)
    response.headers["Cache-Control"] = "no-store"
    # The URL that brought the browser here carried the authorization code.
    response.headers["Referrer-Policy"] = "no-referrer"
    response.delete_cookie(oauth.BROWSER_COOKIE, path=oauth.CALLBACK_PATH)
    return response


_NOT_CONFIGURED = (503, "gmail_not_configured, or redis_unavailable")


@blueprint.get("/gmail/connect")
@api.validate(resp=answers({200: ConsentUrl}, _NOT_CONFIGURED))
def connect(query: ConsentQuery) -> Response:
    """The Google consent URL to send the browser to, bound to the caller's business.

    The URL carries a signed state, usable once within 10 minutes, that binds the consent
    to the caller's business."""
    settings = _configured()
    business_id = current_business_id()
    hint = query.login_hint or None
    try:
        state, nonce = oauth.make_state(_box(settings), _state_store(settings), business_id)
    except (redis.RedisError, OSError) as exc:
        raise _redis_down() from exc
    response = jsonify(ConsentUrl(url=oauth.consent_url(settings, state, hint)).model_dump())
    # Binds the consent to this browser (see libs/gmail/oauth.py). Lax: sent on the
    # top-level redirect back from Google, never on cross-site subrequests.
    response.set_cookie(
        oauth.BROWSER_COOKIE, nonce, max_age=oauth.STATE_MAX_AGE_S, path=oauth.CALLBACK_PATH,
        secure=settings.public_base_url.startswith("https://"), httponly=True, samesite="Lax",
    )  # fmt: skip
    return response


_BACK_TO_SPA = (
    "to {PUBLIC_BASE_URL}/receipts?gmail=connected, or ?gmail=error&reason=... (access_denied, "
    "invalid_grant, google_unreachable, profile_unavailable, ...)"
)


@blueprint.get("/gmail/callback")
@writes  # Google redirects the browser here with a GET
@api.validate(
    resp=answers(
        {302: _BACK_TO_SPA},
        (400, "invalid_state: forged, altered, expired or already used"),
        _NOT_CONFIGURED,
        auth="public",
    ),
)
def callback(query: CallbackQuery) -> BaseResponse:
    """Google's redirect after the consent (the browser's: no token).

    Checks the state, exchanges the code, reads the account's address and stores its refresh
    token encrypted, then redirects to the SPA."""
    settings = _configured()
    box = _box(settings)
    # First, before anything reaches Google: a forged, expired or replayed state stops here.
    try:
        business_id = oauth.take_state(
            box, _state_store(settings), query.state, request.cookies.get(oauth.BROWSER_COOKIE)
        )
    except oauth.OAuthError as exc:
        raise ApiError(400, exc.code, str(exc)) from None
    except (redis.RedisError, OSError) as exc:
        raise _redis_down() from exc
    if error := query.error:
        return _back_to_spa("error", error)  # the owner said no (access_denied), or Google did
    code = query.code
    if not code:
        return _back_to_spa("error", "missing_code")
    try:
        grant = oauth.exchange_code(settings, code)
    except oauth.OAuthError as exc:
        logger.warning("gmail consent of business %s: code refused (%s)", business_id, exc.code)
        return _back_to_spa("error", exc.code)
    except requests.RequestException as exc:
        logger.warning(
            "gmail consent of business %s: %s at Google", business_id, type(exc).__name__
        )
        return _back_to_spa("error", "google_unreachable")
    try:
        email = _account_email(settings, grant.refresh_token)
    except _PROFILE_ERRORS as exc:
        logger.warning(
            "gmail consent of business %s: getProfile failed (%s)", business_id, type(exc).__name__
        )
        # Nothing will hold this grant: do not leave it live at Google.
        oauth.revoke(settings, grant.refresh_token)
        return _back_to_spa("error", "profile_unavailable")
    connection = _store(business_id, email, grant, box)
    logger.info("gmail connection %s stored for business %s", connection.id, business_id)
    return _back_to_spa("connected")


def _account_email(settings: Settings, refresh_token: str) -> str:
    """The inbox's address as Gmail names it: the connection's identity within the business."""
    profile = gmail_service(settings, refresh_token).users().getProfile(userId="me").execute()
    email = str(profile["emailAddress"]).strip().lower()
    if "@" not in email or len(email) > 320:
        raise ValueError("getProfile returned no usable address")
    return email


def _store(business_id: int, email: str, grant: oauth.Grant, box: SecretBox) -> GmailConnection:
    """Insert or update the connection of (business, inbox), with a new encrypted token."""
    session = get_session()
    encrypted = box.encrypt(grant.refresh_token)
    try:
        connection = _upsert(business_id, email, grant.scope, encrypted)
        session.commit()
    except IntegrityError:
        # Two callbacks for one inbox at once: the other inserted the row; update it instead.
        session.rollback()
        connection = _upsert(business_id, email, grant.scope, encrypted)
        session.commit()
    return connection


def _upsert(business_id: int, email: str, scope: str, encrypted: str) -> GmailConnection:
    session = get_session()
    connection = session.scalar(
        select(GmailConnection)
        .where(GmailConnection.business_id == business_id, GmailConnection.email == email)
        .with_for_update()
    )
    if connection is None:
        connection = GmailConnection(business_id=business_id, email=email)
        session.add(connection)
    # history_id is kept: a reconnected inbox carries on from where its last sync stopped.
    connection.refresh_token_encrypted = encrypted
    connection.scope = scope[:500]
    connection.status = "connected"
    connection.last_error = None
    session.flush()
    return connection


@blueprint.get("/gmail/connections")
@api.validate(resp=answers({200: GmailConnections}))
def list_connections() -> GmailConnections:
    """The business's connected inboxes."""
    rows = get_session().scalars(
        select(GmailConnection)
        .where(GmailConnection.business_id == current_business_id())
        .order_by(GmailConnection.id)
    )
    return GmailConnections(items=[Connection.model_validate(row) for row in rows])


@blueprint.delete("/gmail/connections/<int:connection_id>")
@api.validate(resp=answers({204: "disconnected"}, 404))
def disconnect(connection_id: int) -> Response:
    """Disconnect: delete the token here, revoke it at Google (best effort).

    Receipts already synced are kept. A sync in flight is failed."""
    settings = _settings()
    session = get_session()
    connection = session.scalar(
        select(GmailConnection)
        .where(
            GmailConnection.id == connection_id,
            GmailConnection.business_id == current_business_id(),
        )
        .with_for_update()
    )
    if connection is None:
        raise ApiError(404, "not_found", f"no Gmail connection {connection_id}")
    token = _readable_token(_box(settings), connection)
    job = session.get(BackgroundJob, connection.sync_job_id) if connection.sync_job_id else None
    if job is not None and not job.status.is_final:
        # Its actor will find the connection gone; the job must not look alive until it stalls.
        job.status, job.finished_at = JobStatus.FAILED, utcnow()
        job.error_code, job.error_message = "disconnected", "the inbox was disconnected"
    session.delete(connection)
    session.commit()
    # After the commit: Google's answer (or silence) must not keep the token here.
    if token is not None and not oauth.revoke(settings, token):
        logger.warning(
            "gmail connection %s deleted; revoking its token at Google failed", connection_id
        )
    return Response(status=204)


def _readable_token(box: SecretBox, connection: GmailConnection) -> str | None:
    if connection.refresh_token_encrypted is None:
        return None
    try:
        return box.decrypt(connection.refresh_token_encrypted)
    except InvalidToken:
        logger.warning("gmail connection %s: no configured key opens its token", connection.id)
        return None
