"""Periodic jobs the scheduler emits, and their last/next run as recorded in Redis."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis

from libs.common.contracts import MAINTENANCE_RECONCILE, ActorContract
from libs.common.settings import Settings

LEADER_KEY = "switchboard:scheduler:leader"
STATE_KEY = "switchboard:scheduler:periodic"
EMITTED_KEY = "switchboard:scheduler:emitted:{name}:{period}"


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    contract: ActorContract
    period_s: float

    def period_index(self, now: float) -> int:
        return int(now // self.period_s)

    def kwargs_for(self, period_index: int) -> dict[str, Any]:
        # Every periodic actor takes the period it belongs to: its idempotency key.
        return {self.contract.params[0]: int(period_index * self.period_s)}


def periodic_jobs(settings: Settings) -> tuple[PeriodicJob, ...]:
    return (PeriodicJob("reconcile", MAINTENANCE_RECONCILE, settings.scheduler_tick_s),)


def record_run(client: redis.Redis, job: PeriodicJob, ran_at: float, next_at: float) -> None:
    state = {"period_s": job.period_s, "last_run_at": ran_at, "next_run_at": next_at}
    client.hset(STATE_KEY, job.name, json.dumps(state))


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
