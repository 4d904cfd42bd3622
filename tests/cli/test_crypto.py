"""`switchboard crypto`: new keys, and rotation after which the old key can be removed; no
plaintext refresh token anywhere in the database."""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text

from libs.common.crypto import InvalidToken, SecretBox, generate_key, secret_box
from libs.common.db import Database
from libs.common.models import Business, GmailConnection
from libs.common.settings import Settings
from tests.support.processes import service_env, switchboard_argv


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        switchboard_argv(*args), env=env, capture_output=True, text=True, timeout=120
    )


def _box(keys: str) -> SecretBox:
    return secret_box(Settings(encryption_keys=keys))


def _connections(db: Database, box: SecretBox, count: int) -> dict[int, str]:
    """``count`` connections with a token encrypted by ``box`` (and one with none): id → token."""
    tokens = {}
    with db.session() as session:
        business = Business(name="Keys Co", timezone="UTC")
        session.add(business)
        session.flush()
        session.add(GmailConnection(business_id=business.id, email="gone@example.com"))
        for i in range(count):
            token = f"1//0plaintext-refresh-{secrets.token_urlsafe(24)}"
            row = GmailConnection(
                business_id=business.id,
                email=f"inbox{i}@example.com",
                refresh_token_encrypted=box.encrypt(token),
            )
            session.add(row)
            session.flush()
            tokens[row.id] = token
        session.commit()
    return tokens


def _stored(db: Database) -> dict[int, str]:
    with db.session() as session:
        rows = session.execute(
            select(GmailConnection.id, GmailConnection.refresh_token_encrypted).where(
                GmailConnection.refresh_token_encrypted.is_not(None)
            )
        )
        return {row_id: token or "" for row_id, token in rows}


def _dump(db: Database) -> bytes:
    """Every text, JSON and binary column of every table, as SQL returns them."""
    out = []
    columns: list[tuple[str, str]]
    with db.engine.connect() as conn:
        if db.engine.dialect.name == "postgresql":
            columns = [
                (table, column)
                for table, column in conn.execute(
                    text(
                        "SELECT table_name, column_name FROM information_schema.columns "
                        "WHERE table_schema = current_schema() AND data_type IN "
                        "('text', 'character varying', 'character', 'bytea', 'json', 'jsonb')"
                    )
                )
            ]
        else:
            tables = conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'table'"))
            columns = [
                (table, info[1])
                for (table,) in tables.all()
                for info in conn.execute(text(f'PRAGMA table_info("{table}")'))
            ]
        assert ("gmail_connections", "refresh_token_encrypted") in columns
        for table, column in columns:
            for (value,) in conn.execute(text(f'SELECT "{column}" FROM "{table}"')):
                if isinstance(value, bytes | memoryview):
                    out.append(bytes(value))
                elif value is not None:
                    out.append(str(value if isinstance(value, str) else json.dumps(value)).encode())
    return b"\n".join(out)


def test_generate_key_prints_a_new_fernet_key(tmp_path: Path) -> None:
    env = service_env(SWITCHBOARD_VAR_DIR=str(tmp_path))
    first, second = (_cli(env, "crypto", "generate-key") for _ in range(2))
    assert first.returncode == 0, first.stderr
    Fernet(first.stdout.strip())
    assert first.stdout != second.stdout


def test_rotate_moves_every_token_to_the_first_key_so_the_old_one_can_go(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    key_a, key_b = generate_key(), generate_key()
    tokens = _connections(db, _box(key_a), count=5)
    env = service_env(
        DATABASE_URL=database_url,
        SWITCHBOARD_VAR_DIR=str(tmp_path),
        ENCRYPTION_KEYS=f"{key_b},{key_a}",
    )
    result = _cli(env, "crypto", "rotate", "--batch-size", "2")
    assert result.returncode == 0, result.stderr
    assert "gmail_connections.refresh_token_encrypted: 5 re-encrypted" in result.stdout
    assert result.stdout.count("so far") == 3  # batches of 2, 2 and 1
    assert key_a not in result.stdout + result.stderr
    assert key_b not in result.stdout + result.stderr
    # With the old key removed, every token still opens; the old key alone opens none.
    only_b, only_a = _box(key_b), _box(key_a)
    stored = _stored(db)
    assert {row_id: only_b.decrypt(value) for row_id, value in stored.items()} == tokens
    for value in stored.values():
        with pytest.raises(InvalidToken):
            only_a.decrypt(value)
    dump = _dump(db)
    assert b"gone@example.com" in dump  # the dump does see the rows
    for token in tokens.values():
        assert token.encode() not in dump


def test_a_token_no_key_opens_is_reported_and_fails_the_command(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    key_a, lost = generate_key(), generate_key()
    _connections(db, _box(key_a), count=1)
    orphan = _connections(db, _box(lost), count=1)
    env = service_env(
        DATABASE_URL=database_url, SWITCHBOARD_VAR_DIR=str(tmp_path), ENCRYPTION_KEYS=key_a
    )
    result = _cli(env, "crypto", "rotate")
    assert result.returncode == 1
    assert "1 re-encrypted" in result.stdout
    [orphan_id] = orphan
    assert f"1 not readable with any configured key (ids {orphan_id})" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_encrypted_column_is_rotated() -> None:
    from libs.cli.key_rotation import ENCRYPTED_COLUMNS
    from libs.common.models import Base

    named = {f"{t.name}.{c.name}" for t in Base.metadata.tables.values() for c in t.columns
             if c.name.endswith("_encrypted")}  # fmt: skip
    assert named == {f"{c.table.name}.{c.name}" for c in ENCRYPTED_COLUMNS}


def test_rotate_moves_webhook_signing_secrets_too(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    """Both the current secret and one rotated out but still in its grace period."""
    from libs.common.models import WebhookEndpoint, utcnow
    from libs.events import endpoints

    key_a, key_b = generate_key(), generate_key()
    old_box = _box(key_a)
    with db.session() as session:
        business = Business(name="Hooks Co", timezone="UTC")
        session.add(business)
        session.flush()
        endpoint, first = endpoints.create(session, old_box, business.id, "https://h.test/", ["*"])
        second = endpoints.rotate_secret(endpoint, old_box, utcnow(), grace_s=3600)
        session.commit()
        endpoint_id = endpoint.id
    env = service_env(DATABASE_URL=database_url, SWITCHBOARD_VAR_DIR=str(tmp_path),
                      ENCRYPTION_KEYS=f"{key_b},{key_a}")  # fmt: skip
    result = _cli(env, "crypto", "rotate")
    assert result.returncode == 0, result.stderr
    assert "webhook_endpoints.secret_encrypted: 1 re-encrypted" in result.stdout
    assert "webhook_endpoints.previous_secret_encrypted: 1 re-encrypted" in result.stdout
    new_box = _box(key_b)
    with db.session() as session:
        stored = session.get_one(WebhookEndpoint, endpoint_id)
        assert new_box.decrypt(stored.secret_encrypted) == second
        assert new_box.decrypt(stored.previous_secret_encrypted or "") == first
    dump = _dump(db)
    assert first.encode() not in dump and second.encode() not in dump
