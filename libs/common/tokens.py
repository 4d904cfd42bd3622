"""API token secrets: generated once, shown once, stored as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets

#: Tokens carry a recognisable prefix so leaked ones are easy to find (and to scrub from logs).
TOKEN_PREFIX = "sb_"


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    # Tokens are 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()
