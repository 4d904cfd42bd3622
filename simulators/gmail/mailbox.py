"""Per-account mailboxes: messages as real RFC 822 mail, and the history log Gmail syncs by.

Each message is composed once as MIME, and its Gmail ``payload`` tree is read back from that
MIME, so ``format=full`` and ``format=raw`` can never disagree.
"""

from __future__ import annotations

import base64
import html
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime
from typing import Any

from simulators.gmail.query import Node

DEFAULT_EMAIL = "owner@example.com"
#: Where an account's history ids start: Gmail's are large, opaque, increasing numbers.
HISTORY_START = 100_000
SNIPPET_CHARS = 200


def b64url(data: bytes) -> str:
    """Gmail's body encoding: URL-safe base64, padded."""
    return base64.urlsafe_b64encode(data).decode("ascii")


@dataclass(frozen=True)
class Attachment:
    attachment_id: str
    filename: str
    mime_type: str
    data: bytes


@dataclass(frozen=True)
class Draft:
    """A message to deliver: what /_sim/messages and the generator hand a mailbox."""

    sender: str
    subject: str
    text: str
    html: str | None = None
    date: datetime | None = None
    #: (filename, mime type, content)
    attachments: tuple[tuple[str, str, bytes], ...] = ()
    labels: tuple[str, ...] = ("INBOX", "UNREAD")


@dataclass(frozen=True)
class Message:
    id: str
    thread_id: str
    sender: str
    subject: str
    text: str
    date: datetime
    label_ids: tuple[str, ...]
    history_id: int
    attachments: tuple[Attachment, ...]
    raw: bytes
    payload: dict[str, Any]

    @property
    def filenames(self) -> list[str]:
        return [a.filename for a in self.attachments]

    @property
    def internal_date_ms(self) -> int:
        return int(self.date.timestamp() * 1000)

    @property
    def order_key(self) -> tuple[int, str]:
        """Gmail lists newest first; the id breaks ties between equal dates."""
        return (self.internal_date_ms, self.id)

    def ref(self) -> dict[str, Any]:
        return {"id": self.id, "threadId": self.thread_id}

    def resource(
        self, fmt: str = "full", metadata_headers: list[str] | None = None
    ) -> dict[str, Any]:
        """The Gmail Message resource in ``fmt``: minimal, metadata, full or raw."""
        snippet = html.escape(" ".join(self.text.split())[:SNIPPET_CHARS]).replace(
            "&#x27;", "&#39;"
        )
        out: dict[str, Any] = {
            "id": self.id,
            "threadId": self.thread_id,
            "labelIds": list(self.label_ids),
            "snippet": snippet,
            "sizeEstimate": len(self.raw),
            "historyId": str(self.history_id),
            "internalDate": str(self.internal_date_ms),
        }
        if fmt == "raw":
            out["raw"] = b64url(self.raw)
        elif fmt == "full":
            out["payload"] = self.payload
        elif fmt == "metadata":
            wanted = {h.lower() for h in metadata_headers or []}
            headers = [
                h for h in self.payload["headers"] if not wanted or h["name"].lower() in wanted
            ]
            out["payload"] = {"mimeType": self.payload["mimeType"], "headers": headers}
        return out


def compose(msg_id: str, to: str, draft: Draft, date: datetime) -> tuple[bytes, EmailMessage]:
    mail = EmailMessage()
    mail["Delivered-To"] = to
    mail["Date"] = format_datetime(date)
    mail["From"] = draft.sender
    mail["To"] = to
    mail["Subject"] = draft.subject
    mail["Message-ID"] = f"<{msg_id}@mail.sim.example>"
    mail.set_content(draft.text, cte="quoted-printable")
    if draft.html is not None:
        mail.add_alternative(draft.html, subtype="html", cte="quoted-printable")
    for index, (filename, mime_type, data) in enumerate(draft.attachments):
        maintype, _, subtype = mime_type.partition("/")
        mail.add_attachment(data, maintype, subtype or "octet-stream", filename=filename)
        part = list(mail.iter_attachments())[-1]
        part.set_param("name", filename)
        part["X-Attachment-Id"] = f"f_{msg_id[-6:]}{index}"
    # Deterministic boundaries (Gmail's look like these); no MIME-Version on sub-parts.
    for depth, part in enumerate(mail.walk()):
        if part is not mail:
            del part["MIME-Version"]
        if part.is_multipart():
            part.set_boundary(f"{depth:012d}{msg_id}")
    return mail.as_bytes(policy=policy.SMTP), mail


def payload_of(part: MIMEPart, part_id: str, attachment_ids: list[str]) -> dict[str, Any]:
    """Gmail's MessagePart for ``part``: attachments carry an id and size, never inline data."""
    out: dict[str, Any] = {
        "partId": part_id,
        "mimeType": part.get_content_type(),
        "filename": part.get_filename() or "",
        "headers": [{"name": k, "value": str(v)} for k, v in part.items()],
    }
    if part.is_multipart():
        out["body"] = {"size": 0}
        out["parts"] = [
            payload_of(child, f"{part_id}.{i}" if part_id else str(i), attachment_ids)
            for i, child in enumerate(part.iter_parts())
        ]
        return out
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    if out["filename"]:
        out["body"] = {"attachmentId": attachment_ids.pop(0), "size": len(data)}
    else:
        out["body"] = {"size": len(data), "data": b64url(data)}
    return out


@dataclass(frozen=True)
class HistoryRecord:
    id: int
    message: Message

    def resource(self) -> dict[str, Any]:
        added: dict[str, Any] = {"id": self.message.id, "threadId": self.message.thread_id}
        added["labelIds"] = list(self.message.label_ids)
        return {
            "id": str(self.id),
            "messages": [self.message.ref()],
            "messagesAdded": [{"message": added}],
        }


@dataclass
class Mailbox:
    email: str
    messages: dict[str, Message] = field(default_factory=dict)
    history: list[HistoryRecord] = field(default_factory=list)
    history_id: int = HISTORY_START
    #: A startHistoryId below this was expired: Gmail answers 404 and the client must full-sync.
    history_floor: int = HISTORY_START
    #: Ground truth for generated receipts, by message id; generated noise ids.
    receipts: dict[str, dict[str, Any]] = field(default_factory=dict)
    noise: list[str] = field(default_factory=list)
    _seq: int = 0

    def deliver(self, draft: Draft) -> Message:
        """Add a message; like every mailbox change it advances historyId by one record."""
        date = (draft.date or datetime.now(UTC)).astimezone(UTC)
        self._seq += 1
        msg_id = f"{int(date.timestamp() * 1000):011x}{self._seq:05x}"[-16:]
        raw, mail = compose(msg_id, self.email, draft, date)
        ids = [f"ANGjdJ_{msg_id}_{i}" for i in range(len(draft.attachments))]
        attachments = tuple(
            Attachment(ids[i], name, mime, data)
            for i, (name, mime, data) in enumerate(draft.attachments)
        )
        self.history_id += 1
        message = Message(
            msg_id, msg_id, draft.sender, draft.subject, draft.text, date, tuple(draft.labels),
            self.history_id, attachments, raw, payload_of(mail, "", list(ids)),
        )  # fmt: skip
        self.messages[msg_id] = message
        self.history.append(HistoryRecord(self.history_id, message))
        return message

    def deliver_generated(self, items: Iterable[tuple[Draft, dict[str, Any] | None]]) -> int:
        """Deliver generated mail, remembering which is a receipt and what it says."""
        delivered = 0
        for draft, truth in items:
            message = self.deliver(draft)
            if truth is None:
                self.noise.append(message.id)
            else:
                self.receipts[message.id] = truth
            delivered += 1
        return delivered

    def search(self, query: Node, label_ids: list[str], include_spam_trash: bool) -> list[Message]:
        hidden = set() if include_spam_trash else {"SPAM", "TRASH"}
        found = [
            m
            for m in self.messages.values()
            if not hidden & set(m.label_ids)
            and set(label_ids) <= set(m.label_ids)
            and query.match(m)
        ]
        return sorted(found, key=lambda m: m.order_key, reverse=True)

    def changes_since(self, start: int) -> list[HistoryRecord] | None:
        """Records after ``start``, oldest first; None when ``start`` is older than retained."""
        if start < self.history_floor:
            return None
        return [r for r in self.history if r.id > start]

    def expire_history(self) -> None:
        self.history.clear()
        self.history_floor = self.history_id

    def profile(self) -> dict[str, Any]:
        return {
            "emailAddress": self.email,
            "messagesTotal": len(self.messages),
            "threadsTotal": len({m.thread_id for m in self.messages.values()}),
            "historyId": str(self.history_id),
        }


class Store:
    """Every account's mailbox; ``lock`` guards them all (requests arrive on many threads)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.accounts: dict[str, Mailbox] = {}

    def mailbox(self, email: str) -> Mailbox:
        with self.lock:
            return self.accounts.setdefault(email.lower(), Mailbox(email.lower()))

    def reset(self) -> None:
        with self.lock:
            self.accounts.clear()


def valid_id(value: str) -> bool:
    return re.fullmatch(r"[0-9a-f]{1,24}", value) is not None
