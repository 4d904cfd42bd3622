"""Periodic jobs the scheduler emits, and their last/next run as recorded in Redis."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis

from libs.common.contracts import (
    MAINTENANCE_RECONCILE,
    OUTCOMES_SWEEP,
    RECORDINGS_EXPIRE,
    SCHEDULES_TICK,
    WEBHOOKS_SWEEP,
    ActorContract,
)
from libs.common.settings import Settings

LEADER_KEY = "switchboard:scheduler:leader"
STATE_KEY = "switchboard:scheduler:periodic"
EMITTED_KEY = "switchboard:scheduler:emitted:{name}:{period}"
#: Retention is counted in days: checking hourly deletes a recording within the hour it is due.
RECORDINGS_EXPIRE_PERIOD_S = 3600.0


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    contract: ActorContract
    period_s: float
    #: How far back a scheduler that was down emits the periods it missed (0: only the
    #: current one, for jobs where one late run covers everything).
    catch_up_s: float = 0.0

    def period_index(self, now: float) -> int:
        return int(now // self.period_s)

    def kwargs_for(self, period_index: int) -> dict[str, Any]:
        # Every periodic actor takes the period it belongs to: its idempotency key.
        return {self.contract.params[0]: int(period_index * self.period_s)}

    @property
    def marker_ttl_s(self) -> float:
        # A marker must outlive the catch-up window, or a catch-up could emit a period again.
        return max(self.period_s * 10, self.catch_up_s + self.period_s * 2, 60)


def periodic_jobs(settings: Settings) -> tuple[PeriodicJob, ...]:
    return (
        PeriodicJob("reconcile", MAINTENANCE_RECONCILE, settings.scheduler_tick_s),
        PeriodicJob(
            "schedules_tick",
            SCHEDULES_TICK,
            settings.schedule_tick_s,
            catch_up_s=settings.schedule_grace_s,
        ),
        PeriodicJob("webhooks_sweep", WEBHOOKS_SWEEP, settings.webhook_sweep_s),
        PeriodicJob("outcomes_sweep", OUTCOMES_SWEEP, settings.scheduler_tick_s),
        PeriodicJob("recordings_expire", RECORDINGS_EXPIRE, RECORDINGS_EXPIRE_PERIOD_S),
    )


def record_run(
    client: redis.Redis, job: PeriodicJob, period_index: int, ran_at: float, next_at: float
) -> None:
    state = {
        "period_s": job.period_s,
        "last_period": period_index,
        "last_run_at": ran_at,
        "next_run_at": next_at,
    }
    client.hset(STATE_KEY, job.name, json.dumps(state))


def last_period(client: redis.Redis, job: PeriodicJob) -> int | None:
    """The newest period emitted for ``job``, as recorded by the leader that emitted it."""
    raw = client.hget(STATE_KEY, job.name)
    if raw is None:
        return None
    try:
        value = json.loads(raw).get("last_period")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None


def read_state(client: redis.Redis, jobs: tuple[PeriodicJob, ...]) -> list[dict[str, Any]]:
    recorded = client.hgetall(STATE_KEY)
    out = []
    for job in jobs:
        raw = recorded.get(job.name.encode())
        state = json.loads(raw) if raw else {}
        out.append(
            {
                "name": job.name,
                "actor": job.contract.name,
                "period_s": job.period_s,
                "last_run_at": state.get("last_run_at"),
                "next_run_at": state.get("next_run_at"),
            }
        )
    return out
