"""Worker heartbeats in Redis: each live worker process keeps a key alive with a TTL."""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import redis

#: Key of one worker process's heartbeat; it expires when the process stops beating.
KEY_PREFIX = "switchboard:workers:"


@dataclass(frozen=True)
class Heartbeat:
    host: str
    pid: int
    queues: list[str]
    started_at: float
    beat_at: float

    def age_s(self, now: float | None = None) -> float:
        return max(0.0, (now or time.time()) - self.beat_at)

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        return {
            "host": self.host,
            "pid": self.pid,
            "queues": self.queues,
            "started_at": self.started_at,
            "last_beat_at": self.beat_at,
            "heartbeat_age_s": round(self.age_s(now), 3),
        }


def heartbeat_key(host: str, pid: int) -> str:
    return f"{KEY_PREFIX}{host}:{pid}"


def beat(client: redis.Redis, queues: list[str], started_at: float, ttl_s: float) -> Heartbeat:
    hb = Heartbeat(socket.gethostname(), os.getpid(), sorted(queues), started_at, time.time())
    client.set(heartbeat_key(hb.host, hb.pid), json.dumps(hb.__dict__), px=int(ttl_s * 1000))
    return hb


def clear(client: redis.Redis) -> None:
    client.delete(heartbeat_key(socket.gethostname(), os.getpid()))


def live_workers(client: redis.Redis) -> list[Heartbeat]:
    """Every worker whose heartbeat has not expired, oldest beat first."""
    keys = list(client.scan_iter(match=f"{KEY_PREFIX}*", count=500))
    beats = []
    for raw in client.mget(keys) if keys else []:
        if raw is None:  # expired between SCAN and MGET
            continue
        try:
            beats.append(Heartbeat(**json.loads(raw)))
        except (ValueError, TypeError):
            continue
    return sorted(beats, key=lambda hb: hb.beat_at)
