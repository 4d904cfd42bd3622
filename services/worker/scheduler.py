"""The scheduler process: one leader across replicas emits each periodic message once per period.

Leadership is a Redis lock renewed well within its TTL. Each emission first claims a
per-period marker in the same atomic step that checks the lock, so a leader that paused past
its TTL cannot emit, and a new leader never re-emits a period the old one already claimed.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType

import dramatiq
import redis

from libs.common import metrics
from libs.common.redis_client import redis_from_url
from libs.common.settings import Settings
from libs.queueops import periodic
from libs.queueops.leader import LeaderLock
from libs.queueops.queue_health import ENQUEUE_ERRORS

#: What a scheduler pass survives (it retries on the next tick): Redis or the broker away.
PASS_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, *ENQUEUE_ERRORS)

logger = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, settings: Settings, broker: dramatiq.Broker, client: redis.Redis) -> None:
        self.settings = settings
        self.broker = broker
        self.lock = LeaderLock(client, periodic.LEADER_KEY, settings.scheduler_lock_ttl_s)
        self.client = client
        self.jobs = periodic.periodic_jobs(settings)
        self.is_leader = False
        self.stop_event = threading.Event()

    def step(self, now: float | None = None) -> int:
        """One pass: hold or seek leadership, emit what is due. Returns messages emitted."""
        now = time.time() if now is None else now
        was_leader = self.is_leader
        self.is_leader = self.lock.acquire()
        if self.is_leader != was_leader:
            logger.info("scheduler %s leadership", "took" if self.is_leader else "lost")
        if not self.is_leader:
            return 0
        emitted = 0
        for job in self.jobs:
            for index in self._periods_to_emit(job, now):
                marker = periodic.EMITTED_KEY.format(name=job.name, period=index)
                claimed = self.lock.claim_once(marker, ttl_s=job.marker_ttl_s)
                if claimed is None:
                    self.is_leader = False
                    logger.warning("scheduler lost leadership before emitting %s", job.name)
                    return emitted
                if claimed:
                    self.broker.enqueue(job.contract.message(**job.kwargs_for(index)))
                    metrics.SCHEDULER_EMISSIONS.labels(job.name).inc()
                    emitted += 1
                    next_at = (job.period_index(now) + 1) * job.period_s
                    periodic.record_run(self.client, job, index, now, next_at)
        return emitted

    def _periods_to_emit(self, job: periodic.PeriodicJob, now: float) -> range:
        """The current period, preceded by those missed since the last emission (catch-up)."""
        current = job.period_index(now)
        if not job.catch_up_s:
            return range(current, current + 1)
        last = periodic.last_period(self.client, job)
        if last is None:
            return range(current, current + 1)
        oldest = current - int(job.catch_up_s // job.period_s)
        first = max(last + 1, oldest)
        if first < current:
            logger.info("scheduler catching up %d missed %s periods", current - first, job.name)
        # The current period is always tried: when it was already emitted its marker says so.
        return range(min(first, current), current + 1)

    def run(self) -> None:
        # Wake often enough to renew the lock at a third of its TTL and to emit on time.
        interval = min(self.settings.scheduler_lock_ttl_s / 3, self.settings.scheduler_tick_s / 2)
        logger.info(
            "scheduler started: %s", ", ".join(f"{j.name}/{j.period_s:g}s" for j in self.jobs)
        )
        while not self.stop_event.is_set():
            try:
                self.step()
            except PASS_ERRORS as exc:
                self.is_leader = False
                logger.warning("scheduler pass failed, retrying: %s", type(exc).__name__)
            self.stop_event.wait(interval)
        if self.is_leader:
            try:
                self.lock.release()  # hand over at once instead of after the TTL
            except (redis.RedisError, OSError):
                pass
        logger.info("scheduler stopped")

    def stop(self, _signum: int | None = None, _frame: FrameType | None = None) -> None:
        self.stop_event.set()


def main(settings: Settings, metrics_port: int) -> None:
    from prometheus_client import start_http_server

    from libs.queueops.broker import setup_broker

    broker = setup_broker(settings, worker=False)
    if metrics_port:
        start_http_server(metrics_port, addr="0.0.0.0")
    assert settings.redis_url is not None  # setup_broker refuses to start without it
    scheduler = Scheduler(settings, broker, redis_from_url(settings.redis_url, timeout_s=5))
    signal.signal(signal.SIGTERM, scheduler.stop)
    signal.signal(signal.SIGINT, scheduler.stop)
    scheduler.run()


if __name__ == "__main__":
    import os

    from libs.common.logs import configure_logging
    from libs.common.settings import get_settings

    _settings = get_settings()
    configure_logging(_settings)
    main(_settings, int(os.environ.get("SCHEDULER_METRICS_PORT", "9192")))
