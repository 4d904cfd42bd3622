"""Two real scheduler processes share one Redis: one emission per period, counted from the
messages in the queues, and a SIGKILLed leader is replaced within the lock's expiry without a
period emitted twice (the periods missed during the handover are caught up, once)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import redis

from libs.queueops import leader, periodic
from tests.support.processes import running, service_env, switchboard_argv
from tests.support.stack import free_port

LOCK_TTL_S = 2.0


def _periods(client: redis.Redis, queue: str, actor: str) -> list[int]:
    out = []
    for message_id in client.lrange(f"dramatiq:{queue}", 0, -1):
        message = json.loads(client.hget(f"dramatiq:{queue}.msgs", message_id) or b"{}")
        if message.get("actor_name") == actor:
            out.append(int(message["kwargs"]["period_start"]))
    return sorted(out)


def _holder_pid(client: redis.Redis) -> int | None:
    holder = leader.current_holder(client, periodic.LEADER_KEY)
    return int(holder["pid"]) if holder and "pid" in holder else None


def test_two_schedulers_emit_once_per_period_and_hand_over_on_kill(
    database_url: str, redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    env = service_env(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SWITCHBOARD_VAR_DIR=str(tmp_path),
        SCHEDULER_TICK_S="1",
        SCHEDULE_TICK_S="1",
        SCHEDULER_LOCK_TTL_S=str(LOCK_TTL_S),
        SCHEDULE_GRACE_S="60",
    )
    with ExitStack() as stack:
        processes = []
        for name in ("a", "b"):
            port = free_port()
            processes.append(
                stack.enter_context(
                    running(
                        switchboard_argv("scheduler", "--metrics-port", str(port)),
                        env,
                        tmp_path / f"scheduler-{name}.log",
                        f"http://127.0.0.1:{port}/metrics",
                    )
                )
            )
        time.sleep(5)
        leader_pid = _holder_pid(redis_client)
        by_pid = {p.pid: p for p in processes}
        assert leader_pid in by_pid, f"leader {leader_pid} is not one of {list(by_pid)}"
        os.killpg(leader_pid, signal.SIGKILL)
        killed_at = time.monotonic()
        while _holder_pid(redis_client) in (leader_pid, None):
            assert time.monotonic() - killed_at < LOCK_TTL_S + 2, "no new leader"
            time.sleep(0.05)
        handover_s = time.monotonic() - killed_at
        time.sleep(4)
    assert handover_s <= LOCK_TTL_S + 1.0
    ticks = _periods(redis_client, "default", "schedules.tick")
    assert len(ticks) == len(set(ticks)), f"a period was emitted twice: {ticks}"
    # Contiguous: the periods lost during the handover were caught up by the new leader.
    assert ticks == list(range(ticks[0], ticks[-1] + 1)), ticks
    assert len(ticks) >= 9
    reconciles = _periods(redis_client, "maintenance", "maintenance.reconcile")
    assert len(reconciles) == len(set(reconciles)) and len(reconciles) >= 6

    # `switchboard status` lists the periodic jobs with their period, last and next run.
    status = subprocess.run(
        switchboard_argv("status", "--json"), env=env, capture_output=True, text=True, timeout=60
    )
    jobs = {j["name"]: j for j in json.loads(status.stdout)["components"]["scheduler"]["periodic"]}
    assert set(jobs) == {
        "reconcile",
        "schedules_tick",
        "webhooks_sweep",
        "outcomes_sweep",
        "recordings_expire",
    }
    tick = jobs["schedules_tick"]
    assert tick["actor"] == "schedules.tick" and tick["period_s"] == 1
    assert tick["next_run_at"] > tick["last_run_at"] > time.time() - 30
    text = subprocess.run(
        switchboard_argv("status"), env=env, capture_output=True, text=True, timeout=60
    ).stdout
    assert "schedules_tick   every 1s last=" in text
