"""Dramatiq's Prometheus metrics for the worker, cheaper per message.

Dramatiq's own middleware makes five locked writes to the multiprocess metric files for every
message (in-progress up and down, the duration histogram's bucket and sum, the total), from
every worker thread; with 8 threads that cost a no-op message about a tenth of its throughput
(docs/benchmarks.md, "Queue throughput"). Here a message's end still counts at once in
``dramatiq_messages_total`` (and errors in ``dramatiq_message_errors_total``), but its duration
and the in-progress gauge are gathered in memory and written by one thread once a second:
metrics scraped every 15 s or more lose nothing that matters.

Dramatiq's module reads its metrics path from the environment when imported, so it is imported
inside ``build`` only, after the caller has set that environment.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

#: How often durations and in-progress counts reach the metric files.
FLUSH_EVERY_S = 1.0


def build(flush_every_s: float = FLUSH_EVERY_S) -> Any:
    from dramatiq.common import current_millis
    from dramatiq.middleware.prometheus import Prometheus

    class BatchedPrometheus(Prometheus):
        """Every actor's series exported at zero from boot (dashboards and error-rate alerts
        see them before the first message or error); durations and in-progress batched."""

        def __init__(self) -> None:
            super().__init__()
            self._lock = threading.Lock()
            self._durations: list[tuple[tuple[str, str], int]] = []
            self._in_progress: Counter[tuple[str, str]] = Counter()
            self._stop = threading.Event()
            self._flusher: threading.Thread | None = None

        def after_process_boot(self, broker: Any) -> None:
            super().after_process_boot(broker)  # type: ignore[no-untyped-call]
            for actor in broker.actors.values():
                labels = (actor.queue_name, actor.actor_name)
                for metric in (
                    self.total_messages,
                    self.total_errored_messages,
                    self.total_retried_messages,
                    self.total_rejected_messages,
                    self.message_durations,
                ):
                    metric.labels(*labels)

        def after_worker_boot(self, broker: Any, worker: Any) -> None:
            self._stop.clear()
            self._flusher = threading.Thread(
                target=self._flush_every, name="prometheus", daemon=True
            )
            self._flusher.start()

        def after_worker_shutdown(self, broker: Any, worker: Any) -> None:
            # Every message has ended: write what is left, then mark this process dead.
            self._stop.set()
            if self._flusher is not None:
                self._flusher.join(timeout=flush_every_s + 5)
                self._flusher = None
            self.flush()
            super().after_worker_shutdown(broker, worker)  # type: ignore[no-untyped-call]

        def before_process_message(self, broker: Any, message: Any) -> None:
            labels = (message.queue_name, message.actor_name)
            if message.message_id in self.delayed_messages:
                self.delayed_messages.remove(message.message_id)
                self.inprogress_delayed_messages.labels(*labels).dec()
            self.message_start_times[message.message_id] = current_millis()
            with self._lock:
                self._in_progress[labels] += 1

        def after_process_message(
            self, broker: Any, message: Any, *, result: Any = None, exception: Any = None
        ) -> None:
            labels = (message.queue_name, message.actor_name)
            started = self.message_start_times.pop(message.message_id, current_millis())
            with self._lock:
                self._in_progress[labels] -= 1
                self._durations.append((labels, current_millis() - started))
            self.total_messages.labels(*labels).inc()
            if exception is not None:
                self.total_errored_messages.labels(*labels).inc()
            if self._flusher is None:
                self.flush()  # no worker thread to write it later

        after_skip_message = after_process_message

        def flush(self) -> None:
            """Write the gathered durations and the current in-progress counts."""
            with self._lock:
                durations, self._durations = self._durations, []
                in_progress = dict(self._in_progress)
            for labels, duration_ms in durations:
                self.message_durations.labels(*labels).observe(duration_ms)
            for labels, count in in_progress.items():
                self.inprogress_messages.labels(*labels).set(count)

        def _flush_every(self) -> None:
            while not self._stop.wait(flush_every_s):
                self.flush()

    return BatchedPrometheus()
