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

from libs.common import migrate
from libs.common.contracts import QUEUES
from libs.common.db import Database
from libs.common.redis_client import redis_from_url
from libs.common.settings import Settings
from libs.queueops import heartbeats, leader, periodic
from libs.queueops.broker_adapter import BrokerAdapter, QueueUnavailable, adapter_for


def collect(settings: Settings, database: Database | None = None) -> dict[str, Any]:
    now = time.time()
    components: dict[str, dict[str, Any]] = {}
    components["database"] = _check(True, lambda: _database(settings, database))
    components.update(_broker_components(settings, now))
    ok = all(c["ok"] for c in components.values() if c["required"])
    return {"ok": ok, "checked_at": now, "components": components}


# --- the broker and what the coordination Redis knows (workers, scheduler) ------------------


def _broker_components(settings: Settings, now: float) -> dict[str, dict[str, Any]]:
    """broker, queues, workers and scheduler: the queues through the broker adapter, the
    workers' heartbeats and the scheduler's leader from the coordination Redis."""
    timeout_s = settings.broker_check_timeout_s
    components: dict[str, dict[str, Any]] = {}
    try:
        adapter: BrokerAdapter | None = adapter_for(settings, timeout_s)
    except QueueUnavailable as exc:
        adapter = None
        components["broker"] = {"required": True, "ok": False, "error": exc.message}
    if adapter is not None:
        components["broker"] = _check(True, lambda: _broker(adapter))
    if adapter is None or not components["broker"]["ok"]:
        for name in ("queues", "workers", "scheduler"):
            components[name] = {"required": False, "ok": False, "state": "unknown: broker down"}
        return components
    components["queues"] = _check(False, lambda: _queues(adapter))
    adapter.close()
    if not settings.redis_url:
        for name in ("workers", "scheduler"):
            components[name] = {"required": False, "ok": False, "state": "unknown: no REDIS_URL"}
        return components
    client = redis_from_url(settings.redis_url, timeout_s=timeout_s)
    components["workers"] = _check(False, lambda: _workers(client, now))
    components["scheduler"] = _check(False, lambda: _scheduler(client, settings, now))
    client.close()
    return components


def _broker(adapter: BrokerAdapter) -> dict[str, Any]:
    latency_ms = adapter.ping()
    return {"ok": True, "kind": adapter.kind, "latency_ms": round(latency_ms, 2)}


def _queues(adapter: BrokerAdapter) -> dict[str, Any]:
    depths = adapter.depths(QUEUES)
    return {"ok": True, "queues": {queue: depths[queue].to_dict() for queue in QUEUES}}


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
                in_progress = "?" if c["in_progress"] is None else c["in_progress"]
                lines.append(
                    f"    {queue:<12} ready={c['ready']} in_progress={in_progress} "
                    f"delayed={c['delayed']} dead={c['dead']}"
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
