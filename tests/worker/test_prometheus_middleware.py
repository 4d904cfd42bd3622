"""The worker's Prometheus middleware: totals at once, durations and in-progress batched."""

from __future__ import annotations

from pathlib import Path

import dramatiq
import pytest
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker

from libs.common.middleware import prometheus


def _value(metric: object, sample_name: str, actor: str) -> float:
    for family in metric.collect():  # type: ignore[attr-defined]
        for sample in family.samples:
            if sample.name == sample_name and sample.labels.get("actor_name") == actor:
                return float(sample.value)
    return 0.0


def test_totals_count_at_once_and_durations_reach_the_metrics_by_shutdown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Dramatiq's middleware points this variable at its own directory when it boots; the
    # monkeypatch puts the test process's environment back afterwards.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setenv("prometheus_multiproc_dir", str(tmp_path))
    middleware = prometheus.build(flush_every_s=3600)  # only the shutdown flush in this test
    broker = StubBroker(middleware=[middleware])
    broker.declare_queue("default")

    @dramatiq.actor(broker=broker, actor_name="tests.metered")
    def metered(value: int) -> None:
        del value

    broker.emit_after("process_boot")
    duration_count = "dramatiq_message_duration_milliseconds_count"
    assert _value(middleware.total_messages, "dramatiq_messages_total", "tests.metered") == 0
    worker = Worker(broker, worker_timeout=50, worker_threads=2)
    worker.start()
    try:
        for value in range(3):
            metered.send(value)
        broker.join("default", timeout=10_000)
        worker.join()
        total = _value(middleware.total_messages, "dramatiq_messages_total", "tests.metered")
        assert total == 3  # readable the moment the messages end
        assert _value(middleware.message_durations, duration_count, "tests.metered") == 0
    finally:
        worker.stop()
    assert _value(middleware.message_durations, duration_count, "tests.metered") == 3
    assert _value(middleware.inprogress_messages, "dramatiq_messages_inprogress",
                  "tests.metered") == 0  # fmt: skip
