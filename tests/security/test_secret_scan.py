"""The log-secret scan finds what it must (so its silence at the end of the suite means
something), and the production log filter scrubs secrets before they are written."""

from __future__ import annotations

import io
import logging
from pathlib import Path

from libs.common.logs import ContextFilter, Redactor
from tests.support import secret_scan


def test_the_scanner_finds_secrets_by_shape_and_by_value(tmp_path: Path) -> None:
    planted = {
        "API token": "sb_" + "A1b2C3d4" * 5,
        "Google refresh token": "1//0" + "x" * 40,
        "Google access token": "ya29." + "y" * 40,
        "OAuth authorization code": "4/0" + "z" * 30,
        "Authorization header": "Authorization: Bearer abcdef123456",
    }
    for kind, secret in planted.items():
        findings = secret_scan.scan_text(f"GET /x {secret} done", "test")
        assert any(kind in f for f in findings), (kind, findings)
        assert all(secret not in f for f in findings)  # the report masks what it found
    registered = secret_scan.remember("twilio-auth-token-under-test")
    assert secret_scan.scan_text(f"token is {registered}", "t")
    assert secret_scan.scan_text("Authorization: Bearer [REDACTED]", "t") == []
    log = tmp_path / "service.log"
    log.write_text("INFO ok\nWARNING leaked sb_" + "Q" * 30 + "\n")
    secret_scan.watch(log)
    assert any(str(log) in f for f in secret_scan.scan_all())
    log.write_text("INFO ok\n")  # leave nothing for the session's own scan


def test_the_production_filter_scrubs_before_writing() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter("api", Redactor(["twilio-secret-value"])))
    logger = logging.getLogger("test.scrub")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("headers %s", {"Authorization": "Bearer sb_" + "k" * 30})
        logger.warning("refresh_token=%s twilio=%s", "1//0" + "r" * 30, "twilio-secret-value")
    finally:
        logger.removeHandler(handler)
    written = stream.getvalue()
    assert "[REDACTED]" in written
    assert secret_scan.scan_text(written, "handler output") == []
