"""Headless Chromium for the browser tests: Debian's chromium, driven by Playwright."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from libs.common.settings import ROOT
from tests.support.services import IN_CI

#: Screenshots of the browser tests, kept after the run (CI keeps the directory as an artifact).
ARTIFACTS = ROOT / "var" / "test-artifacts" / "browser"


def chromium_executable() -> str:
    """Debian's chromium (.ci/run installs it): skipped locally without it, failed in CI."""
    path = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    if path is None:
        if IN_CI:
            pytest.fail("chromium is required in CI (.ci/run installs Debian's chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


def require_playwright() -> None:
    """Playwright drives the system chromium; it never downloads a browser of its own."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        if IN_CI:
            pytest.fail("playwright is required in CI (the dev extra of pyproject.toml)")
        pytest.skip("playwright is not installed")
