"""The chaos report: a run's saved rows render into docs/reliability.md's chaos section only."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from tests.support.chaos import BEGIN, END, ChaosRow, save_results, write_reliability


def _row(scenario: str, broker: str = "redis") -> ChaosRow:
    values = {f.name: 0 for f in fields(ChaosRow)}
    text = dict(scenario=scenario, fault="kill", readyz_down="n/a", producers_503="n/a",
                broker=broker)  # fmt: skip
    values.update(text, resumed="yes", notes="seed 7", ready_after_s=None, duration_s=12.5)
    return ChaosRow(**values)  # type: ignore[arg-type]


def test_saved_rows_render_into_the_chaos_section_and_nothing_else(tmp_path: Path) -> None:
    results, report = tmp_path / "chaos.json", tmp_path / "reliability.md"
    rows = [_row("worker SIGKILL"), _row("Redis FLUSHDB"), _row("RabbitMQ purged", "rabbitmq")]
    save_results(results, rows, "pytest tests/chaos", 95)
    report.write_text(f"# Reliability\n\n{BEGIN}\nold rows\n{END}\n\n## Soak\n\nkept\n")

    write_reliability(report, json.loads(results.read_text()))

    text = report.read_text()
    assert "old rows" not in text and text.endswith("## Soak\n\nkept\n")
    section = text.split(BEGIN, 1)[1].split(END, 1)[0]
    assert "| worker SIGKILL | redis | kill |" in section
    assert "| Redis FLUSHDB | redis | kill |" in section
    assert "| RabbitMQ purged | rabbitmq | kill |" in section
    assert "Produced by `pytest tests/chaos`" in section and "took 95 s" in section
    assert "- **worker SIGKILL** (redis): seed 7" in section
