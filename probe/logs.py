"""Secrets in logs: what the stack logged while probed, searched for every secret the probe
used and for secret-shaped text (what the services' own log filter would still scrub)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from libs.common.logs import Redactor
from probe.model import SECRETS, Check


def check_logs(logs: list[Path], known: dict[str, str], record: Callable[[Check], Check]) -> None:
    """``known``: what each secret is → its value."""
    for path in logs:
        text = path.read_text(errors="replace") if path.exists() else ""
        lines = text.splitlines()
        for what, secret in known.items():
            found = sum(1 for line in lines if secret in line)
            problem = f"{found} lines hold {what}" if found else None
            record(Check(SECRETS, path.name, what, None, problem, leak=bool(found)))
        numbers = [i + 1 for i, line in enumerate(lines) if Redactor()(line) != line]
        problem = f"secret-shaped text on lines {numbers[:10]}" if numbers else None
        record(Check(SECRETS, path.name, f"secret-shaped text in {len(lines)} lines", None,
                     problem, leak=bool(numbers)))  # fmt: skip
