"""Browser tests: the screenshots directory, emptied when they start and named at the end."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.browser import ARTIFACTS

_used = False


@pytest.fixture(scope="session")
def artifacts() -> Path:
    global _used
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    _used = True
    return ARTIFACTS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _used:
        shots = sorted(ARTIFACTS.glob("*.png"))
        terminalreporter.write_line(f"browser screenshots ({len(shots)}): {ARTIFACTS}")
