"""The worker's Prometheus middleware: what messages add up to, written once a second."""

from __future__ import annotations

from pathlib import Path

import dramatiq
import pytest
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker

from libs.queueops.middleware import prometheus


def _value(metric: object, sample_name: str, actor: str) -> float:
    for family in metric.collect():  # type: ignore[attr-defined]
        for sample in family.samples:
            if sample.name == sample_name and sample.labels.get("actor_name") == actor:
                return float(sample.value)
    return 0.0


def test_totals_and_durations_reach_the_metrics_by_shutdown(
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
        # Ended, but not written yet: the flush comes once a second (here: at shutdown).
        assert _value(middleware.total_messages, "dramatiq_messages_total", "tests.metered") == 0
        assert _value(middleware.message_durations, duration_count, "tests.metered") == 0
    finally:
        worker.stop()
    assert _value(middleware.total_messages, "dramatiq_messages_total", "tests.metered") == 3
    assert _value(middleware.message_durations, duration_count, "tests.metered") == 3
    assert _value(middleware.inprogress_messages, "dramatiq_messages_inprogress",
                  "tests.metered") == 0  # fmt: skip


def _samples(metric: object, actor: str) -> dict[tuple[str, str], float]:
    return {
        (sample.name, sample.labels.get("le", "")): float(sample.value)
        for family in metric.collect()  # type: ignore[attr-defined]
        for sample in family.samples
        if sample.labels.get("actor_name") == actor
    }


def test_a_flush_writes_what_observing_each_message_would_have(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dramatiq.common import current_millis
    from prometheus_client import CollectorRegistry, Histogram

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setenv("prometheus_multiproc_dir", str(tmp_path))
    middleware = prometheus.build(flush_every_s=3600)
    broker = StubBroker(middleware=[middleware])
    broker.declare_queue("default")

    @dramatiq.actor(broker=broker, actor_name="tests.timed")
    def timed() -> None:
        pass

    broker.emit_after("process_boot")
    durations_ms = [1, 30, 400, 420, 20_000]  # the 5, 50, 500, 500 and 30000 ms buckets
    for index, duration in enumerate(durations_ms):
        message = timed.message()
        middleware.before_process_message(broker, message)
        middleware.message_start_times[message.message_id] = current_millis() - duration
        failed = ValueError("boom") if index == 0 else None
        middleware.after_process_message(broker, message, exception=failed)
    middleware.flush()

    reference = Histogram(
        "reference", "same buckets", registry=CollectorRegistry(),
        buckets=middleware._bounds,
    )  # fmt: skip
    for duration in durations_ms:
        reference.observe(duration)
    expected = {
        le: float(sample.value)
        for sample in next(iter(reference.collect())).samples
        if sample.name == "reference_bucket"
        for le in [sample.labels["le"]]
    }
    written = _samples(middleware.message_durations, "tests.timed")
    name = "dramatiq_message_duration_milliseconds"
    assert {le: written[(f"{name}_bucket", le)] for le in expected} == expected
    assert written[(f"{name}_count", "")] == len(durations_ms)
    # The clock moves between setting a start and ending the message: a few ms at most.
    assert sum(durations_ms) <= written[(f"{name}_sum", "")] <= sum(durations_ms) + 50
    assert _value(middleware.total_messages, "dramatiq_messages_total", "tests.timed") == 5
    errors = _value(middleware.total_errored_messages, "dramatiq_message_errors_total",
                    "tests.timed")  # fmt: skip
    assert errors == 1
    in_progress = _value(middleware.inprogress_messages, "dramatiq_messages_inprogress",
                         "tests.timed")  # fmt: skip
    assert in_progress == 0
