"""Signing deliveries the Standard Webhooks way (standardwebhooks.com, as Svix does).

Each request carries ``webhook-id`` (the event id: the receiver's idempotency key),
``webhook-timestamp`` (Unix seconds, of this attempt) and ``webhook-signature``: ``v1,`` and the
base64 HMAC-SHA256 of ``{webhook-id}.{webhook-timestamp}.{body}``, keyed with the secret's bytes
(the base64 after ``whsec_``). While a rotated-out secret is still valid, the header holds one
signature per secret, space-separated; a receiver accepts the request if any matches. The
README's "Verifying a delivery" snippet is this recipe from the receiver's side.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable

SECRET_PREFIX = "whsec_"
#: Bytes of key material in a new secret (Standard Webhooks asks for 24 to 64).
SECRET_BYTES = 32
#: Receivers should refuse a timestamp further than this from their clock (replays).
TOLERANCE_S = 300


class InvalidSignature(ValueError):
    """No signature in the header matches, or the timestamp is outside the tolerance."""


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(
    secrets_: Iterable[str], message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The signature headers of one attempt, signed with every secret given (newest first)."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, message_id, timestamp, body) for s in secrets_),
    }


def verify(secret: str, headers_: dict[str, str], body: bytes, now: float) -> None:
    """The receiver's check (used by tests; the README shows it standalone)."""
    lowered = {k.lower(): v for k, v in headers_.items()}
    message_id, timestamp = lowered["webhook-id"], int(lowered["webhook-timestamp"])
    if abs(now - timestamp) > TOLERANCE_S:
        raise InvalidSignature("timestamp outside the tolerance")
    expected = sign(secret, message_id, timestamp, body)
    if not any(hmac.compare_digest(expected, s) for s in lowered["webhook-signature"].split()):
        raise InvalidSignature("no signature matches")
