"""Logging: JSON in production, readable locally; request ids attached; secrets scrubbed."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

from libs.common.request_context import get_request_id
from libs.common.settings import Settings

#: Shapes of secrets that must never reach a log line, whatever logged them.
_SECRET_PATTERNS = (
    re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(bearer|basic)?\s*[^\s\"',;]+"),
    re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"\b(sb_)[A-Za-z0-9_-]{16,}"),
    re.compile(r"\b(whsec_)[A-Za-z0-9+/=]{16,}"),
    re.compile(
        r"(?i)((?:password|passwd|secret|token|refresh_token|access_token|auth_token|api_key)"
        r"[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;]+"
    ),
    re.compile(r"(://[^:/@\s]+:)[^@/\s]+(@)"),
)
REDACTED = "[REDACTED]"


class Redactor:
    """Scrubs known secret values and secret-shaped text from a string."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        for pattern in _SECRET_PATTERNS:
            text = pattern.sub(_keep_prefix, text)
        return text


def _keep_prefix(match: re.Match[str]) -> str:
    groups = [g for g in match.groups() if g is not None]
    if len(groups) >= 2 and groups[-1] == "@":
        return f"{groups[0]}{REDACTED}@"
    prefix = groups[0] if groups else ""
    if prefix.lower() in ("bearer", "basic"):
        prefix = ""
    return f"{prefix}{REDACTED}"


class ContextFilter(logging.Filter):
    """Adds the request id and service role, and scrubs secrets from the final message."""

    def __init__(self, role: str, redactor: Redactor) -> None:
        super().__init__()
        self.role = role
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = get_request_id() or "-"
        record.service = self.role
        # Render once, scrub, and freeze: formatters then see only the scrubbed text.
        message = self.redactor(record.getMessage())
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor(record.exc_text)
        record.msg, record.args = message, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "service": getattr(record, "service", "-"),
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_text:
            payload["exc"] = record.exc_text
        return json.dumps(payload, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(service)s [%(request_id)s] %(name)s: %(message)s"


def configure_logging(settings: Settings) -> None:
    """Route every logger (ours, gunicorn's, Dramatiq's) through one scrubbing handler."""
    redactor = Redactor(
        [
            settings.twilio_auth_token,
            settings.google_client_secret,
            settings.encryption_keys,
            settings.openai_api_key,
            *(settings.encryption_keys or "").split(","),
        ]
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter(settings.service_role, redactor))
    handler.setFormatter(
        JsonFormatter() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # pika logs every AMQP connection opened and closed at INFO: the RabbitMQ reachability check
    # and the broker adapter open one per check (libs/queueops/queue_health.py).
    logging.getLogger("pika").setLevel(max(logging.WARNING, root.level))
    # Twilio's SDK logs every request at INFO, about ten lines each (its URL, every header, the
    # response's headers): a placed call's create alone was a tenth of the dialer's worker CPU
    # (py-spy, issue 19), and a worker's lines also cross a pipe to its parent process.
    # Failures still reach the log: the SDK raises, and the caller logs what it decides.
    logging.getLogger("twilio.http_client").setLevel(max(logging.WARNING, root.level))
    # Libraries log through propagation to the root handler, never through their own.
    for name in ("gunicorn.error", "gunicorn.access", "dramatiq"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
