"""Secrets at rest (Gmail refresh tokens): Fernet with key rotation.

``ENCRYPTION_KEYS`` holds Fernet keys, comma-separated, newest first. The first encrypts; every
key decrypts, so a new key can be put in front, ``switchboard crypto rotate`` re-encrypts every
stored secret with it, and the old key can then be removed. Outside production a missing key is
generated once into ``var/`` so the embedded stack works without set-up; production refuses to
start without one (settings.PRODUCTION_REQUIRED).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from libs.common.settings import ConfigError, Settings, parse_keys

__all__ = ["InvalidToken", "SecretBox", "generate_key", "parse_keys", "secret_box"]

DEV_KEY_FILE = "dev-encryption.key"


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


class SecretBox:
    def __init__(self, fernets: list[Fernet], primary_key: str) -> None:
        self._fernet = MultiFernet(fernets)
        self._primary_key = primary_key

    def derive(self, purpose: str) -> bytes:
        """A key for one other purpose (signing OAuth state), derived from the primary key so
        one variable holds every secret and rotating it rotates them all."""
        return hmac.new(self._primary_key.encode(), purpose.encode(), hashlib.sha256).digest()

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """Raises InvalidToken if no configured key opens it (a retired key, or tampering)."""
        return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")

    def rotate(self, token: str) -> str:
        """The same secret under the first key."""
        return self._fernet.rotate(token.encode("ascii")).decode("ascii")


def _dev_key(var_dir: Path) -> str:
    path = var_dir / DEV_KEY_FILE
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two processes starting together must not each write a different key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(generate_key())
    return path.read_text().strip()


def secret_box(settings: Settings) -> SecretBox:
    raw = settings.encryption_keys
    if not raw:
        if settings.is_production:
            raise ConfigError("ENCRYPTION_KEYS is required in production")
        raw = _dev_key(settings.var_dir)
    return SecretBox(parse_keys(raw), raw.split(",")[0].strip())
