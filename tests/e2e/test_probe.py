"""The outside probe (`make probe`, probe/) against the embedded stack, as the "probed from
outside" table of docs/reliability.md claims: every documented operation covered, no failed
check, no 5xx, no leak. A complete run leaves its results in var/test-results/probe.json for
`make probe-report`, as the chaos tests do (a test run never changes the work tree)."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.__main__ import save, summary_lines
from probe.embedded import embedded_target
from probe.model import CATEGORIES
from probe.runner import probe
from tests.support import secret_scan

pytestmark = pytest.mark.e2e


def _api_operations() -> int:
    from libs.common.settings import Settings
    from services.api.app import create_app

    app = create_app(Settings(app_env="test", service_role="api"))
    return sum(
        len((rule.methods or set()) - {"HEAD", "OPTIONS"})
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/") and rule.endpoint != "api.openapi"
    )


def test_the_probe_finds_nothing_on_the_embedded_stack(tmp_path: Path) -> None:
    log = tmp_path / "stack.log"
    secret_scan.watch(log)  # and the suite's own secret scan reads what the stack logged
    with embedded_target(tmp_path / "var", log) as target:
        for token in (target.business_a, target.business_b, target.operator):
            secret_scan.remember(token)
        results = probe(target, command="pytest tests/e2e/test_probe.py")
    report = "\n".join(summary_lines(results))
    assert results["failures"] == [], report
    operations = results["operations"]
    # Every operation of the document the stack serves, and that document lists every /api
    # route of the app (the app's own url map, counted here), so none can go unprobed.
    assert operations["not_covered"] == [] and operations["covered"] >= _api_operations(), report
    for name in CATEGORIES:
        assert results["summary"][name]["checks"] > 0, (name, report)
    # The checks that need each fixture ran: A's rows of every kind were there to aim at.
    cases = {(c["category"], c["operation"], c["case"]) for c in results["checks"]}
    for operation in ("GET /api/calls/{call_id}", "DELETE /api/gmail/connections/{connection_id}",
                      "GET /api/receipts/{receipt_id}/attachments/{attachment_id}"):  # fmt: skip
        assert ("tenant isolation", operation, "B names A's row") in cases, operation
    assert (
        "webhook/WebSocket",
        "GET /ws/media",
        "signed, A's ended call, its start replayed",
    ) in cases
    save(results)
