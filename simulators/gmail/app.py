"""The simulator's HTTP face: Gmail REST v1 paths, Google's OAuth ones and /_sim/ control.

Gmail paths are the static discovery document's: rootUrl + ``gmail/v1/users/{userId}/...``,
so ``build("gmail", "v1", client_options={"api_endpoint": SIM_URL})`` lands here unchanged.
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

from flask import Flask, Response, jsonify, request

from simulators.gmail import control, oauth
from simulators.gmail.mailbox import Mailbox, Store, b64url, valid_id
from simulators.gmail.query import QueryError, parse
from simulators.gmail.quota import Quota

GMAIL = "/gmail/v1/users/<user_id>"
FORMATS = ("full", "metadata", "minimal", "raw")
STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED"}
STATUS |= {404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED"}
NOT_FOUND = "Requested entity was not found."
UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)


class GmailError(Exception):
    """Gmail's error body: googleapiclient's HttpError takes ``errors`` as error_details."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str,
        domain: str = "global",
        headers: dict[str, str] | None = None,
        summary: str | None = None,
        **where: str,
    ) -> None:
        super().__init__(message)
        self.code, self.headers = code, headers or {}
        error = {"message": summary or message, "domain": domain, "reason": reason, **where}
        detail = {"code": code, "message": message, "errors": [error], "status": STATUS[code]}
        self.body = {"error": detail}

    def response(self) -> Response:
        response = jsonify(self.body)
        response.status_code = self.code
        response.headers.update(self.headers)
        return response


def invalid(message: str) -> GmailError:
    return GmailError(400, message, "invalidArgument")


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise invalid(f"Invalid value for {name}: {raw}")
    return max(low, min(high, int(raw)))


def create_app(client_id: str, client_secret: str) -> Flask:
    app = Flask(__name__)
    sim = control.Simulator(Store(), oauth.Authority(client_id, client_secret), Quota())
    app.extensions["gmail"] = sim
    store, quota = sim.store, sim.quota
    oauth.register(app, sim.authority, quota)

    @app.errorhandler(GmailError)
    def _gmail_error(exc: GmailError) -> Response:
        return exc.response()

    def enter(user_id: str, method: str) -> Mailbox:
        """Authenticate, authorize ``user_id`` and spend ``method``'s quota, or raise."""
        token = sim.authority.authenticate(request.headers.get("Authorization", ""))
        if token is None:
            challenge = 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
            raise GmailError(
                401, UNAUTHENTICATED, "authError", headers={"WWW-Authenticate": challenge},
                summary="Invalid Credentials", location="Authorization", locationType="header",
            )  # fmt: skip
        email = token.grant.email
        if user_id != "me" and user_id.lower() != email:
            raise GmailError(403, f"Delegation denied for {email}", "forbidden")
        limited = quota.charge(email, method)
        if limited is not None:
            message = f"User-rate limit exceeded.  Retry after {limited.retry_at}"
            retry_after = {"Retry-After": str(math.ceil(limited.retry_after_s))}
            raise GmailError(429, message, "rateLimitExceeded", "usageLimits", retry_after)
        return store.mailbox(email)

    @app.get(f"{GMAIL}/profile")
    def get_profile(user_id: str) -> Response:
        mailbox = enter(user_id, "users.getProfile")
        with store.lock:
            return jsonify(mailbox.profile())

    @app.get(f"{GMAIL}/messages")
    def list_messages(user_id: str) -> Response:
        mailbox = enter(user_id, "messages.list")
        try:
            query = parse(request.args.get("q", ""))
        except QueryError as exc:
            raise invalid(f"Invalid query: {exc}") from exc
        limit = _int_arg("maxResults", 100, 1, 500)
        spam = request.args.get("includeSpamTrash", "false").lower() == "true"
        with store.lock:
            found = mailbox.search(query, request.args.getlist("labelIds"), spam)
        body: dict[str, Any] = {"resultSizeEstimate": len(found)}
        if token := request.args.get("pageToken"):
            try:
                ms, _, last_id = base64.urlsafe_b64decode(token + "==").decode().partition(":")
                cursor = (int(ms), last_id)
            except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
                raise invalid("Invalid pageToken") from exc
            found = [m for m in found if m.order_key < cursor]
        page = found[:limit]
        if page:
            body["messages"] = [m.ref() for m in page]
        if len(found) > limit:
            last_ms, last_id = page[-1].order_key
            cursor_text = f"{last_ms}:{last_id}".encode()
            body["nextPageToken"] = base64.urlsafe_b64encode(cursor_text).decode()
        return jsonify(body)

    @app.get(f"{GMAIL}/messages/<msg_id>")
    def get_message(user_id: str, msg_id: str) -> Response:
        mailbox = enter(user_id, "messages.get")
        fmt = request.args.get("format", "full")
        if fmt not in FORMATS:
            raise invalid(f"Invalid value for format: {fmt}")
        if not valid_id(msg_id):
            raise invalid("Invalid id value")
        with store.lock:
            message = mailbox.messages.get(msg_id)
        if message is None:
            raise GmailError(404, NOT_FOUND, "notFound")
        return jsonify(message.resource(fmt, request.args.getlist("metadataHeaders")))

    @app.get(f"{GMAIL}/messages/<msg_id>/attachments/<attachment_id>")
    def get_attachment(user_id: str, msg_id: str, attachment_id: str) -> Response:
        mailbox = enter(user_id, "messages.attachments.get")
        with store.lock:
            message = mailbox.messages.get(msg_id)
        attachments = message.attachments if message else ()
        found = [a for a in attachments if a.attachment_id == attachment_id]
        if not found:
            raise GmailError(404, NOT_FOUND, "notFound")
        data = found[0].data
        return jsonify({"attachmentId": attachment_id, "size": len(data), "data": b64url(data)})

    @app.get(f"{GMAIL}/history")
    def list_history(user_id: str) -> Response:
        mailbox = enter(user_id, "history.list")
        start = request.args.get("startHistoryId", "")
        if not start.isdigit():
            raise invalid("Invalid startHistoryId")
        limit = _int_arg("maxResults", 100, 1, 500)
        with store.lock:
            records = mailbox.changes_since(int(start))
            body: dict[str, Any] = {"historyId": str(mailbox.history_id)}
        if records is None:  # expired: the client must fall back to a full sync
            raise GmailError(404, NOT_FOUND, "notFound")
        types = request.args.getlist("historyTypes")
        label = request.args.get("labelId")
        after = request.args.get("pageToken", "0")
        if not after.isdigit():
            raise invalid("Invalid pageToken")
        records = [
            r
            for r in records
            if (not types or "messageAdded" in types)
            and (not label or label in r.message.label_ids)
            and r.id > int(after)
        ]
        if records[:limit]:
            body["history"] = [r.resource() for r in records[:limit]]
        if len(records) > limit:
            body["nextPageToken"] = str(records[limit - 1].id)
        return jsonify(body)

    control.register(app, sim)
    return app
