"""The health of every component, for `switchboard status` and /api/queue/status.

Never raises: each component is checked on its own, and an optional component that is absent
(no worker running, no scheduler) is reported as missing, not logged as an error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis
from sqlalchemy import text

from libs.common import heartbeats, leader, migrate, periodic
from libs.common.contracts import QUEUES
from libs.common.db import Database
from libs.common.redis_client import redis_from_url
from libs.common.settings import Settings

#: Dramatiq's Redis key namespace.
DRAMATIQ_NAMESPACE = "dramatiq"


def collect(settings: Settings, database: Database | None = None) -> dict[str, Any]:
    now = time.time()
    components: dict[str, dict[str, Any]] = {}
    components["database"] = _check(True, lambda: _database(settings, database))
    client = (
        redis_from_url(settings.redis_url, timeout_s=settings.broker_check_timeout_s)
        if settings.redis_url
        else None
    )
    if client is None:
        components["broker"] = {"required": True, "ok": False, "error": "REDIS_URL is not set"}
    else:
        components["broker"] = _check(True, lambda: _broker(client))
    broker_up = components["broker"]["ok"]
    if client is not None and broker_up:
        components["queues"] = _check(False, lambda: _queues(client))
        components["workers"] = _check(False, lambda: _workers(client, now))
        components["scheduler"] = _check(False, lambda: _scheduler(client, settings, now))
    else:
        for name in ("queues", "workers", "scheduler"):
            components[name] = {"required": False, "ok": False, "state": "unknown: broker down"}
    ok = all(c["ok"] for c in components.values() if c["required"])
    return {"ok": ok, "checked_at": now, "components": components}


def _check(required: bool, probe: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        result = probe()
    except Exception as exc:  # a status report describes failures, it does not raise them
        return {"required": required, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    result.setdefault("ok", True)
    return {"required": required, **result}


def _database(settings: Settings, database: Database | None) -> dict[str, Any]:
    owned = database is None
    db = database or Database(settings.database_url)
    try:
        # Read-only and bounded: a health read never queues for SQLite's write lock behind a
        # long write, nor holds a request thread longer than its own timeout.
        with db.read_connection(settings.database_check_timeout_s) as connection:
            connection.execute(text("SELECT 1"))
            current = migrate.current_revision(connection)
    finally:
        if owned:
            db.dispose()
    head = migrate.head_revision()
    return {
        "ok": True,
        "backend": db.engine.dialect.name,
        "migration": {"current": current, "head": head, "up_to_date": current == head},
    }


def _broker(client: redis.Redis) -> dict[str, Any]:
    started = time.perf_counter()
    client.ping()
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def _queues(client: redis.Redis) -> dict[str, Any]:
    pipe = client.pipeline(transaction=False)
    for queue in QUEUES:
        base = f"{DRAMATIQ_NAMESPACE}:{queue}"
        pipe.llen(base)
        pipe.llen(f"{base}.DQ")
        pipe.zcard(f"{base}.XQ")
    counts = pipe.execute()
    queues = {
        queue: {"ready": counts[i * 3], "delayed": counts[i * 3 + 1], "dead": counts[i * 3 + 2]}
        for i, queue in enumerate(QUEUES)
    }
    return {"ok": True, "queues": queues}


def _workers(client: redis.Redis, now: float) -> dict[str, Any]:
    beats = heartbeats.live_workers(client)
    return {
        "ok": bool(beats),
        "state": "running" if beats else "missing",
        "count": len(beats),
        "workers": [hb.to_dict(now) for hb in beats],
    }


def _scheduler(client: redis.Redis, settings: Settings, now: float) -> dict[str, Any]:
    holder = leader.current_holder(client, periodic.LEADER_KEY)
    return {
        "ok": holder is not None,
        "state": "running" if holder else "missing",
        "leader": holder,
        "periodic": periodic.read_state(client, periodic.periodic_jobs(settings)),
    }


def render_text(report: dict[str, Any]) -> str:
    """A human summary of ``collect``'s report."""
    lines = [f"switchboard status: {'OK' if report['ok'] else 'DEGRADED'}"]
    for name, component in report["components"].items():
        mark = "ok" if component["ok"] else ("DOWN" if component["required"] else "missing")
        kind = "required" if component["required"] else "optional"
        detail = component.get("error") or component.get("state") or ""
        lines.append(f"  {name:<10} {mark:<8} ({kind}) {detail}".rstrip())
        if name == "queues" and "queues" in component:
            for queue, c in component["queues"].items():
                lines.append(
                    f"    {queue:<12} ready={c['ready']} delayed={c['delayed']} dead={c['dead']}"
                )
        if name == "workers":
            for worker in component.get("workers", []):
                lines.append(
                    f"    {worker['host']}:{worker['pid']} queues={','.join(worker['queues'])} "
                    f"heartbeat {worker['heartbeat_age_s']:.1f}s ago"
                )
        if name == "scheduler":
            for job in component.get("periodic", []):
                lines.append(
                    f"    {job['name']:<16} every {job['period_s']:g}s "
                    f"last={_ts(job['last_run_at'])} next={_ts(job['next_run_at'])}"
                )
    return "\n".join(lines)


def _ts(value: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(value)) if value else "never"
