"""The suite's log-secret scan: everything logged while the tests ran — every in-process log
record and every service process's log file — is searched for secrets.

Secrets are found two ways: by shape (our API tokens' ``sb_`` prefix, webhook signing secrets'
``whsec_``, Google's refresh/access
token and authorization-code prefixes, an Authorization header with a credential after it) and
by value (secrets the fixtures registered with ``remember``: Twilio auth tokens, encryption
keys). In-process records are passed through the production log filter's redactor first, as
the real handler would; process log files are already what the services wrote.
"""

from __future__ import annotations

import logging
import re
import traceback
from pathlib import Path

from libs.common.logs import Redactor

SHAPES = {
    "API token": re.compile(r"\bsb_[A-Za-z0-9_-]{20,}"),
    "Google refresh token": re.compile(r"\b1//0[A-Za-z0-9_-]{20,}"),
    "Google access token": re.compile(r"\bya29\.[A-Za-z0-9_-]{20,}"),
    "OAuth authorization code": re.compile(r"\b4/0[A-Za-z0-9_-]{20,}"),
    "webhook signing secret": re.compile(r"\bwhsec_[A-Za-z0-9+/=]{20,}"),
    "Authorization header": re.compile(
        r"(?i)authorization[\"']?\s*[:=]\s*[\"']?(?:bearer|basic)\s+(?!\[REDACTED\])[A-Za-z0-9]"
    ),
}

_known: set[str] = set()
_log_files: list[Path] = []
_records: list[str] = []


def remember(secret: str) -> str:
    """Register a secret value the logs must never contain; returns it for convenience."""
    if len(secret) >= 8:
        _known.add(secret)
    return secret


def watch(path: Path) -> None:
    """A process log file to scan at the end of the session."""
    _log_files.append(path)


def capture_log_records() -> None:
    """Keep every record's final text, whatever handlers the code under test installs (the
    services' configure_logging replaces the root handlers, so a handler would be lost)."""
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            text = record.getMessage()
        except Exception:
            text = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            text += "\n" + "".join(traceback.format_exception(record.exc_info[1]))
        _records.append(f"{record.name}: {text}")
        return record

    logging.setLogRecordFactory(factory)


def _mask(secret: str) -> str:
    return secret[:6] + "…" if len(secret) > 6 else "…"


def scan_text(text: str, source: str) -> list[str]:
    findings = []
    for kind, pattern in SHAPES.items():
        for match in pattern.finditer(text):
            findings.append(f"{source}: {kind} {_mask(match.group(0))}")
    for secret in _known:
        if secret in text:
            findings.append(f"{source}: registered secret {_mask(secret)}")
    return findings


def scan_all() -> list[str]:
    redact = Redactor()  # the production filter's patterns (known values vary per process)
    findings = scan_text("\n".join(redact(r) for r in _records), "in-process log records")
    for path in dict.fromkeys(_log_files):
        if path.exists():
            findings += scan_text(path.read_text(errors="replace"), str(path))
    return findings
