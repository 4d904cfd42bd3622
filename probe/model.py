"""What a probe records: one ``Check`` per request or observation, judged as it is made."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import requests

ISOLATION = "tenant isolation"
AUTH = "auth"
BAD_INPUT = "bad input"
TWILIO = "webhook/WebSocket"
SECRETS = "secrets in logs"
CATEGORIES = (ISOLATION, AUTH, BAD_INPUT, TWILIO, SECRETS)


@dataclass
class Check:
    category: str
    #: "GET /api/leads/{lead_id}", "POST /webhook/twilio/status", a log file…
    operation: str
    case: str
    status: int | None = None
    #: None: the check passed. Otherwise what was wrong, for the report.
    problem: str | None = None
    #: The stack answered 5xx.
    server_error: bool = False
    #: Something crossed a boundary: another tenant's data, a forged request accepted, a
    #: private path served, a secret in a log.
    leak: bool = False


@dataclass
class Recorder:
    checks: list[Check] = field(default_factory=list)
    requests: int = 0

    def record(self, check: Check) -> Check:
        self.checks.append(check)
        return check

    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.problem is not None]

    def summary(self) -> dict[str, dict[str, int]]:
        rows = {name: Counter[str]() for name in CATEGORIES}
        for check in self.checks:
            row = rows[check.category]
            row["checks"] += 1
            row["failed"] += check.problem is not None
            row["server_errors"] += check.server_error
            row["leaks"] += check.leak
        keys = ("checks", "failed", "server_errors", "leaks")
        return {name: {key: row[key] for key in keys} for name, row in rows.items()}

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "summary": self.summary(),
            "failures": [asdict(c) for c in self.failures()],
            "checks": [asdict(c) for c in self.checks],
        }


def error_shape_problem(response: requests.Response) -> str | None:
    """Why an error answer is not ``{"error": {"code": str, "message": str}}``, or None."""
    try:
        error = json.loads(response.content).get("error")
    except (ValueError, AttributeError):
        error = None
    if not (
        isinstance(error, dict)
        and isinstance(error.get("code"), str)
        and isinstance(error.get("message"), str)
    ):
        kind = response.headers.get("Content-Type", "?")
        return (
            f"{response.status_code} is not the JSON error shape ({kind}): {response.text[:120]!r}"
        )
    return None


def judge(
    response: requests.Response, expected: set[int] | None = None, allow_success: bool = False
) -> tuple[str | None, bool]:
    """(problem, server_error) of an answer: never a 5xx, errors in the JSON shape, and the
    status in ``expected`` when given (or any 4xx, or a 2xx/3xx with ``allow_success``)."""
    status = response.status_code
    if status >= 500:
        return f"{status}: {response.text[:200]!r}", True
    if status >= 400 and (problem := error_shape_problem(response)):
        return problem, False
    if expected is not None:
        if status in expected:
            return None, False
        return f"{status}, expected {sorted(expected)}: {response.text[:160]!r}", False
    if status < 400 and not allow_success:
        return f"{status}: accepted", False
    return None, False
