"""Serving a stored attachment safely: a mime type and a file name the sender chose are data.

Both come from an email, so from anyone: the name is stripped of paths, quotes and control
characters before it reaches a header, and a type that is not a plain ``type/subtype`` is
served as octet-stream.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

from flask import Response

FALLBACK_NAME = "attachment"
MAX_NAME = 150
_MIME = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
#: Outside this set a character is replaced in the ASCII name (``%`` would be percent-decoded
#: by some browsers; quotes and backslashes would end or escape the quoted string).
_ASCII_UNSAFE = re.compile(r"[^A-Za-z0-9._()+#&@!~, -]")


def safe_filename(name: str) -> str:
    """The last path component, printable, without quotes, never empty or hidden."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C" and ch not in "\"';")
    name = name.strip().lstrip(".").strip()[:MAX_NAME]
    return name or FALLBACK_NAME


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII ``filename`` and the exact one as RFC 5987 ``filename*``."""
    exact = safe_filename(name)
    ascii_name = unicodedata.normalize("NFKD", exact).encode("ascii", "ignore").decode("ascii")
    ascii_name = _ASCII_UNSAFE.sub("_", ascii_name).strip() or FALLBACK_NAME
    header = f'attachment; filename="{ascii_name}"'
    if ascii_name != exact:
        header += f"; filename*=UTF-8''{quote(exact, safe='')}"
    return header


def safe_mime_type(mime_type: str) -> str:
    value = mime_type.strip().lower()
    return value if _MIME.fullmatch(value) else "application/octet-stream"


def attachment_response(content: bytes, filename: str, mime_type: str, sha256: str) -> Response:
    response = Response(content, mimetype=safe_mime_type(mime_type))
    response.headers["Content-Disposition"] = content_disposition(filename)
    # Never rendered as our origin's page: no sniffing, and no script if a browser opens it.
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    # Tenant data: browsers may keep it, shared caches may not; the ETag revalidates it.
    response.headers["Cache-Control"] = "private, no-cache"
    response.set_etag(sha256)
    return response
