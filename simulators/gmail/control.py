"""The /_sim/ control endpoints: shape the mail, the tokens and the limits; read the counts.

No auth, JSON in and out, never charged to quota. A request the simulator cannot act on
answers 400 with a short reason, like the Twilio simulator's.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, jsonify, request

from simulators.gmail import oauth
from simulators.gmail.generator import generate
from simulators.gmail.mailbox import Draft, Mailbox, Store
from simulators.gmail.quota import Quota

SCENARIO_KEYS = ("quota_units_per_minute", "rate_limit_next", "consent_denied")
GENERATE_KEYS = (
    "count",
    "receipt_ratio",
    "attachment_ratio",
    "seed",
    "email",
    "start",
    "span_days",
)


class BadControl(ValueError):
    """A /_sim/ request the simulator cannot act on (answered 400, like the Twilio one)."""


@dataclass
class Simulator:
    store: Store
    authority: oauth.Authority
    quota: Quota

    def generate(self, raw: dict[str, Any]) -> dict[str, Any]:
        unknown = set(raw) - set(GENERATE_KEYS)
        if unknown:
            raise BadControl(f"unknown generate fields: {sorted(unknown)}")
        options = {k: v for k, v in raw.items() if k not in ("email", "start")}
        start = _instant(raw.get("start"))
        mailbox = self.store.mailbox(raw.get("email") or oauth.DEFAULT_ACCOUNT)
        drafts = generate(start=start, **options)  # the slow part, outside the lock
        with self.store.lock:
            count = mailbox.deliver_generated(drafts)
            history_id = str(mailbox.history_id)
        return {"email": mailbox.email, "generated": count, "historyId": history_id}

    def reset(self) -> None:
        self.store.reset()
        self.authority.reset()
        self.quota.reset()


def _instant(raw: str | None) -> datetime | None:
    """An ISO 8601 instant; one without a zone is UTC (the simulator's clock is UTC)."""
    if not raw:
        return None
    value = datetime.fromisoformat(raw)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _draft(raw: dict[str, Any]) -> Draft:
    def content(attachment: dict[str, str]) -> bytes:
        data = attachment["content_b64"].replace("-", "+").replace("_", "/")  # either alphabet
        return base64.b64decode(data + "=" * (-len(data) % 4), validate=True)

    attachments = tuple(
        (a["filename"], a.get("mime_type", "application/octet-stream"), content(a))
        for a in raw.get("attachments", [])
    )
    labels = tuple(raw.get("labels", ("INBOX", "UNREAD")))
    text, date = raw.get("text", ""), _instant(raw.get("date"))
    return Draft(raw["from"], raw["subject"], text, raw.get("html"), date, attachments, labels)


def register(app: Flask, sim: Simulator) -> None:
    store, quota, authority = sim.store, sim.quota, sim.authority

    @app.errorhandler(BadControl)
    def _bad(exc: BadControl) -> tuple[Response, int]:
        return jsonify({"error": {"code": "bad_request", "message": str(exc)}}), 400

    def body() -> dict[str, Any]:
        raw = request.get_json(force=True, silent=True)
        if raw is None and not request.data:
            return {}
        if not isinstance(raw, dict):
            raise BadControl("the body must be a JSON object")
        return raw

    def ok() -> Response:
        return jsonify({"status": "ok"})

    @app.get("/_sim/healthz")
    def healthz() -> Response:
        return ok()

    @app.post("/_sim/mailbox/generate")
    def generate_mail() -> Response:
        try:
            return jsonify(sim.generate(body()))
        except (TypeError, ValueError) as exc:
            raise BadControl(str(exc)) from exc

    @app.post("/_sim/messages")
    def add_messages() -> Response:
        raw = body()
        try:
            drafts = [_draft(m) for m in raw.get("messages", [])]
        except (KeyError, TypeError, ValueError, binascii.Error) as exc:
            raise BadControl(f"bad message: {exc!r}") from exc
        mailbox = store.mailbox(raw.get("email") or oauth.DEFAULT_ACCOUNT)
        with store.lock:
            ids = [mailbox.deliver(d).id for d in drafts]
            return jsonify({"ids": ids, "historyId": str(mailbox.history_id)})

    @app.get("/_sim/ground_truth")
    def ground_truth() -> Response:
        email = (request.args.get("email") or oauth.DEFAULT_ACCOUNT).lower()
        with store.lock:
            mailbox = store.accounts.get(email) or Mailbox(email)
            return jsonify({"receipts": mailbox.receipts, "noise": mailbox.noise})

    @app.get("/_sim/counts")
    def counts() -> Response:
        return jsonify(quota.snapshot())

    @app.post("/_sim/counts/reset")
    def reset_counts() -> Response:
        quota.reset_counts()
        return ok()

    @app.post("/_sim/history/expire")
    def expire_history() -> Response:
        email = body().get("email")
        with store.lock:
            for mailbox in store.accounts.values():
                if email is None or mailbox.email == email.lower():
                    mailbox.expire_history()
        return ok()

    @app.post("/_sim/tokens/issue")
    def issue_token() -> Response:
        raw = body()
        email = raw.get("email") or oauth.DEFAULT_ACCOUNT
        store.mailbox(email)  # a connected account has a mailbox, even an empty one
        grant = authority.issue(email, raw.get("scope") or oauth.DEFAULT_SCOPE)
        return jsonify({"refresh_token": grant.refresh_token, "email": grant.email})

    @app.post("/_sim/tokens/revoke")
    def revoke_tokens() -> Response:
        authority.revoke_all()
        return ok()

    @app.post("/_sim/tokens/expire_access")
    def expire_access() -> Response:
        authority.expire_access()
        return ok()

    @app.post("/_sim/scenario")
    def set_scenario() -> Response:
        raw = body()
        unknown = set(raw) - set(SCENARIO_KEYS)
        if unknown:
            raise BadControl(f"unknown scenario fields: {sorted(unknown)}")
        try:
            units, forced = raw.get("quota_units_per_minute"), raw.get("rate_limit_next")
            quota.update(
                None if units is None else int(units), None if forced is None else int(forced)
            )
        except (TypeError, ValueError) as exc:
            raise BadControl(str(exc)) from exc
        if "consent_denied" in raw:
            authority.consent_denied = bool(raw["consent_denied"])
        return ok()

    @app.post("/_sim/reset")
    def reset() -> Response:
        sim.reset()
        return ok()
