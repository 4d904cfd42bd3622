"""Re-encrypt every stored secret with the first key of ``ENCRYPTION_KEYS``.

After a new key is put in front (and every process runs with the new list), this moves each
secret under it, so the keys after it can be removed. Rows are read in id order, a batch per
transaction, locked while rewritten: a token written meanwhile (already under the first key)
is never overwritten by an older one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, bindparam, inspect, select, update

from libs.common.crypto import InvalidToken, SecretBox
from libs.common.db import Database
from libs.common.models import AgentSettings, GmailConnection, WebhookEndpoint

#: Every column holding a SecretBox ciphertext. A new one must be listed here, or rotating
#: would leave it under a key that is about to be removed (a test finds unlisted ones).
ENCRYPTED_COLUMNS: tuple[Column[Any], ...] = (
    inspect(GmailConnection).columns["refresh_token_encrypted"],
    inspect(AgentSettings).columns["api_key_encrypted"],
    inspect(WebhookEndpoint).columns["secret_encrypted"],
    inspect(WebhookEndpoint).columns["previous_secret_encrypted"],
)


@dataclass
class Rotation:
    column: str
    rotated: int = 0
    #: Ids of rows no configured key opens (their key was already removed, or tampering).
    unreadable: list[int] = field(default_factory=list)


def rotate_column(
    database: Database,
    box: SecretBox,
    column: Column[Any],
    batch_size: int = 500,
    progress: Callable[[Rotation], None] | None = None,
) -> Rotation:
    table = column.table
    [key] = table.primary_key.columns  # single-column keys (agent_settings: business_id)
    result = Rotation(f"{table.name}.{column.name}")
    statement = (
        update(table).where(key == bindparam("row_id")).values({column.name: bindparam("value")})
    )
    last_id = 0
    while True:
        with database.session() as session:
            rows = session.execute(
                select(key, column)
                .where(key > last_id, column.is_not(None))
                .order_by(key)
                .limit(batch_size)
                .with_for_update()
            ).all()
            if not rows:
                return result
            changes = []
            for row_id, token in rows:
                try:
                    changes.append({"row_id": row_id, "value": box.rotate(token)})
                except InvalidToken:
                    result.unreadable.append(row_id)
            if changes:
                session.execute(statement, changes)
            session.commit()
        result.rotated += len(changes)
        last_id = rows[-1][0]
        if progress is not None:
            progress(result)


def rotate_all(
    database: Database,
    box: SecretBox,
    batch_size: int = 500,
    progress: Callable[[Rotation], None] | None = None,
) -> list[Rotation]:
    return [rotate_column(database, box, c, batch_size, progress) for c in ENCRYPTED_COLUMNS]
