"""Dramatiq's Prometheus metrics for the worker, cheaper per message.

Dramatiq's own middleware makes five locked writes to the multiprocess metric files for every
message (in-progress up and down, the duration histogram's bucket and sum, the total), from
every worker thread; one such write costs more CPU than the rest of a no-op message's
middleware together (docs/benchmarks.md, "Queue throughput"). Here a message's end only adds
to counts in memory, per queue and actor: messages, errors, the duration histogram's buckets
and sum, in progress. One thread writes them once a second (and the worker's shutdown writes
what is left), a handful of writes per actor whatever the rate: metrics scraped every 15 s or
more lose nothing that matters, and a process killed outright loses at most its last second.

Dramatiq's module reads its metrics path from the environment when imported, so it is imported
inside ``build`` only, after the caller has set that environment.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from typing import Any

#: How often durations and in-progress counts reach the metric files.
FLUSH_EVERY_S = 1.0


class _Ended:
    """Messages of one queue and actor that ended since the last flush."""

    __slots__ = ("buckets", "duration_sum", "errors", "messages")

    def __init__(self, bucket_count: int) -> None:
        self.messages = self.errors = 0
        self.duration_sum = 0.0
        self.buckets = [0] * bucket_count

    def add(self, bucket: int, duration_ms: float, exception: BaseException | None) -> None:
        self.messages += 1
        self.errors += exception is not None
        self.duration_sum += duration_ms
        self.buckets[bucket] += 1


def build(flush_every_s: float = FLUSH_EVERY_S) -> Any:
    from dramatiq.common import current_millis
    from dramatiq.middleware.prometheus import Prometheus

    class BatchedPrometheus(Prometheus):
        """Every actor's series exported at zero from boot (dashboards and error-rate alerts
        see them before the first message or error); durations and in-progress batched."""

        def __init__(self) -> None:
            super().__init__()
            self._lock = threading.Lock()
            #: (queue, actor) → what ended since the last flush.
            self._ended: dict[tuple[str, str], _Ended] = {}
            #: The duration histogram's upper bounds (set when the metrics exist, at boot).
            self._bounds: list[float] = []
            self._in_progress: Counter[tuple[str, str]] = Counter()
            self._stop = threading.Event()
            self._flusher: threading.Thread | None = None

        def after_process_boot(self, broker: Any) -> None:
            super().after_process_boot(broker)  # type: ignore[no-untyped-call]
            self._bounds = list(self.message_durations._upper_bounds)
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
            started = self.message_start_times.pop(message.message_id, None)
            duration_ms = current_millis() - started if started is not None else 0
            with self._lock:
                self._in_progress[labels] -= 1
                ended = self._ended.get(labels)
                if ended is None:
                    ended = self._ended[labels] = _Ended(len(self._bounds))
                ended.add(bisect.bisect_left(self._bounds, duration_ms), duration_ms, exception)
            if self._flusher is None:
                self.flush()  # no worker thread to write it later

        after_skip_message = after_process_message

        def flush(self) -> None:
            """Write what ended since the last flush, and the current in-progress counts."""
            with self._lock:
                ended, self._ended = self._ended, {}
                in_progress = dict(self._in_progress)
            for labels, counts in ended.items():
                self.total_messages.labels(*labels).inc(counts.messages)
                if counts.errors:
                    self.total_errored_messages.labels(*labels).inc(counts.errors)
                # Histogram.observe(), added up: the same bucket (the first upper bound not
                # below the value; buckets are stored per bucket, not cumulative) and sum.
                durations = self.message_durations.labels(*labels)
                durations._sum.inc(counts.duration_sum)
                for index, count in enumerate(counts.buckets):
                    if count:
                        durations._buckets[index].inc(count)
            for labels, count in in_progress.items():
                self.inprogress_messages.labels(*labels).set(count)

        def _flush_every(self) -> None:
            while not self._stop.wait(flush_every_s):
                self.flush()

    return BatchedPrometheus()
