"""One probe of a target, every category in turn, into the results the report renders."""

from __future__ import annotations

import os
import subprocess
import time
from datetime import UTC, datetime
from typing import Any

from libs.common.settings import ROOT
from probe import api_checks, fixtures, openapi
from probe.logs import check_logs
from probe.model import Recorder
from probe.target import Client, Target
from probe.twilio import TWILIO_ROUTES, check_webhooks


def probe(target: Target, command: str = "make probe") -> dict[str, Any]:
    recorder = Recorder()
    client = Client(target, recorder)
    started = time.monotonic()
    doc = client.api("GET", "/api/openapi.json").json()
    ops = openapi.operations(doc)
    owned = fixtures.make(client, recorder.record)
    api_checks.check_isolation(client, doc, ops, owned, recorder.record)
    sent = api_checks.check_auth(client, doc, ops, owned, recorder.record)
    api_checks.check_bad_input(client, doc, ops, owned, recorder.record)
    check_webhooks(client, recorder.record, target.a_number, owned.inbound)
    known = {"A's token": target.business_a, "B's token": target.business_b,
             "the operator's token": target.operator} | sent  # fmt: skip
    if target.twilio_auth_token:
        known["Twilio's auth token"] = target.twilio_auth_token
    time.sleep(1)  # the services' last lines reach their logs
    check_logs(target.logs, known, recorder.record)
    names = {op.name for op in ops}
    covered = {check.operation for check in recorder.checks} & names
    return {
        "target": target.label or target.api,
        "command": command,
        "finished_at": f"{datetime.now(UTC):%Y-%m-%d %H:%M}",
        "commit": _git_revision(),
        "elapsed_s": round(time.monotonic() - started, 1),
        "cores": os.cpu_count(),
        "load": list(os.getloadavg()),
        "operations": {
            "documented": len(names),
            "covered": len(covered),
            "not_covered": sorted(names - covered),
        },
        "twilio_routes": list(TWILIO_ROUTES),
        "logs_scanned": [str(p) for p in target.logs],
        **recorder.to_json(),
    }


def _git_revision() -> str:
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=ROOT,
                             capture_output=True, text=True, timeout=10)  # fmt: skip
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
