"""Reading a Gmail API Message resource (``format=full``): headers, body text and attachments.

Gmail hands over whatever the sender's MIME said, so every accessor tolerates missing keys,
wrong types and undecodable data by treating them as absent rather than raising.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, overload

_T = TypeVar("_T")


@dataclass(frozen=True)
class AttachmentRef:
    """Enough to fetch an attachment later with ``users.messages.attachments.get``."""

    part_id: str
    attachment_id: str
    filename: str
    mime_type: str
    size: int


class Headers(dict[str, str]):
    """Header values by lower-cased name; look-ups accept any case, as header names do."""

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    @overload
    def get(self, key: str, default: None = None, /) -> str | None: ...
    @overload
    def get(self, key: str, default: str, /) -> str: ...
    @overload
    def get(self, key: str, default: _T, /) -> str | _T: ...
    def get(self, key: str, default: object = None, /) -> object:
        return super().get(key.lower(), default)


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def payload(message: object) -> dict[str, Any]:
    return _dict(_dict(message).get("payload"))


def headers(message: object) -> Headers:
    """The top-level headers; the first of a repeated name wins (it is the outermost one)."""
    out = Headers()
    raw = payload(message).get("headers")
    for item in raw if isinstance(raw, list) else []:
        name, value = _dict(item).get("name"), _dict(item).get("value")
        if isinstance(name, str) and isinstance(value, str):
            out.setdefault(name.lower(), value)
    return out


def walk(part: dict[str, Any], depth: int = 0) -> Iterator[dict[str, Any]]:
    """Every part, depth first; the depth cap stops a hostile, deeply nested tree."""
    yield part
    children = part.get("parts")
    if depth < 32 and isinstance(children, list):
        for child in children:
            if isinstance(child, dict):
                yield from walk(child, depth + 1)


def decode_b64url(data: str) -> bytes | None:
    """Gmail's base64url, padded or not; None when it is not base64 at all."""
    try:
        return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return None


def _charset(part: dict[str, Any]) -> str:
    for item in part.get("headers") or []:
        if str(_dict(item).get("name", "")).lower() == "content-type":
            found = re.search(r'charset="?([\w.:-]+)', str(_dict(item).get("value", "")), re.I)
            if found:
                try:
                    return codecs.lookup(found.group(1)).name
                except LookupError:
                    break  # an unknown charset: UTF-8 with replacement is the best guess
    return "utf-8"


def _inline_text(part: dict[str, Any], mime_type: str) -> str | None:
    """The decoded content of an inline (not attached) ``mime_type`` part."""
    if part.get("mimeType") != mime_type or part.get("filename"):
        return None
    data = _dict(part.get("body")).get("data")
    raw = decode_b64url(data) if isinstance(data, str) else None
    return None if raw is None else raw.decode(_charset(part), errors="replace")


_INVISIBLE = re.compile(r"<(script|style|head)\b.*?</\1\s*>", re.I | re.S)
# Block boundaries become line breaks so "Total</td><td>$5" and "<p>Date: ...</p>" keep
# their label and value on one line, and separate lines apart, as in the plain-text part.
_BLOCK = re.compile(r"<\s*(br|/p|/div|/tr|/li|/h[1-6]|/table|hr)\b[^>]*>", re.I)
_TAG = re.compile(r"<[^>]*>")


def strip_html(markup: str) -> str:
    text = _BLOCK.sub("\n", _INVISIBLE.sub(" ", markup))
    text = html.unescape(_TAG.sub(" ", text))
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def body_with_source(message: object) -> tuple[str, str]:
    """(text, "body:text" or "body:html"): plain parts when any, else HTML without tags."""
    parts = list(walk(payload(message)))
    plain = [t for p in parts if (t := _inline_text(p, "text/plain")) is not None]
    if any(t.strip() for t in plain):
        return "\n".join(plain), "body:text"
    markup = [t for p in parts if (t := _inline_text(p, "text/html")) is not None]
    return "\n".join(strip_html(t) for t in markup), "body:html"


def body_text(message: object) -> str:
    return body_with_source(message)[0]


def attachments(message: object) -> tuple[AttachmentRef, ...]:
    """PDF and image attachments: the kinds a receipt comes as (not calendar files, etc.)."""
    out = []
    for part in walk(payload(message)):
        mime_type = str(part.get("mimeType") or "").lower()
        if mime_type != "application/pdf" and not mime_type.startswith("image/"):
            continue
        body = _dict(part.get("body"))
        attachment_id, size = body.get("attachmentId"), body.get("size")
        if not isinstance(attachment_id, str) or not attachment_id:
            continue  # inline data only (a tiny logo): nothing to fetch, nothing to keep
        out.append(
            AttachmentRef(
                part_id=str(part.get("partId") or ""),
                attachment_id=attachment_id,
                filename=str(part.get("filename") or ""),
                mime_type=mime_type,
                size=size if isinstance(size, int) and size >= 0 else 0,
            )
        )
    return tuple(out)
