"""Logs are JSON in production, carry request ids, and never contain secrets."""

import io
import json
import logging

import pytest

from libs.common.logs import ContextFilter, JsonFormatter, Redactor, configure_logging
from libs.common.request_context import set_request_id
from libs.common.settings import Settings

SECRET_TOKEN = "sb_" + "A1b2C3d4" * 5


@pytest.mark.parametrize(
    "line",
    [
        f"Authorization: Bearer {SECRET_TOKEN}",
        f"headers={{'Authorization': 'Bearer {SECRET_TOKEN}'}}",
        f"token={SECRET_TOKEN}",
        "refresh_token=1//0gLongGoogleRefreshToken",
        "postgresql://app:hunter2hunter2@db:5432/switchboard",
        "password: hunter2hunter2",
        "TWILIO auth_token=abcdef0123456789",
        "endpoint 3 signs with whsec_hunter2hunter2Zm9vYmFyYmF6cXV4cXV1eA==",
    ],
)
def test_secret_shapes_are_scrubbed(line: str) -> None:
    scrubbed = Redactor()(line)
    assert "[REDACTED]" in scrubbed
    for secret in (SECRET_TOKEN, "1//0gLongGoogleRefreshToken", "hunter2hunter2", "abcdef0123",
                   "Zm9vYmFy"):  # fmt: skip
        assert secret not in scrubbed


def test_configured_secret_values_are_scrubbed_anywhere() -> None:
    assert "s3cr3t-value" not in Redactor(["s3cr3t-value"])("oops: s3cr3t-value!")


def test_json_lines_carry_the_request_id_and_no_secret() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter("api", Redactor()))
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        set_request_id("req-123")
        logger.info("calling with %s", f"Bearer {SECRET_TOKEN}")
    finally:
        set_request_id(None)
        logger.removeHandler(handler)
    record = json.loads(stream.getvalue())
    assert record["request_id"] == "req-123"
    assert record["service"] == "api"
    assert SECRET_TOKEN not in stream.getvalue()


def test_the_twilio_sdk_s_request_lines_are_not_logged_at_info() -> None:
    """About ten INFO lines per provider request (URL, every header): a tenth of the dialer's
    worker CPU per call. Our own INFO lines still go out."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    twilio = logging.getLogger("twilio.http_client")
    twilio_level = twilio.level
    try:
        configure_logging(Settings(log_level="INFO"))
        assert not twilio.isEnabledFor(logging.INFO)
        assert twilio.isEnabledFor(logging.WARNING)
        assert logging.getLogger("services.worker.dialer").isEnabledFor(logging.INFO)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        twilio.setLevel(twilio_level)
