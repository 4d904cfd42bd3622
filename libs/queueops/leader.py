"""A leader lock in Redis: one holder at a time, lost when not renewed within its TTL.

The lock is a key holding a random token. Renewing and acting as leader are compare-and-set
operations on that token, so a holder that paused past the TTL can no longer act.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from typing import Any

import redis

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""
#: Claim a once-only marker, but only while still holding the lock.
_CLAIM_IF_LEADER = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then
  return -1
end
if redis.call('set', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then
  return 1
end
return 0
"""


class LeaderLock:
    def __init__(self, client: redis.Redis, key: str, ttl_s: float) -> None:
        self.client, self.key, self.ttl_ms = client, key, int(ttl_s * 1000)
        # The token says who holds the lock, readable by `switchboard status`.
        self.token = json.dumps(
            {"host": socket.gethostname(), "pid": os.getpid(), "id": uuid.uuid4().hex}
        )

    def acquire(self) -> bool:
        """Take the lock if free, or renew it if already ours."""
        if self.client.set(self.key, self.token, nx=True, px=self.ttl_ms):
            return True
        return self.renew()

    def renew(self) -> bool:
        return bool(self.client.eval(_RENEW, 1, self.key, self.token, self.ttl_ms))

    def release(self) -> None:
        self.client.eval(_RELEASE, 1, self.key, self.token)

    def claim_once(self, marker_key: str, ttl_s: float) -> bool | None:
        """Set ``marker_key`` once, atomically with checking leadership.

        True: claimed now; False: already claimed; None: this process is no longer the leader.
        """
        result = self.client.eval(
            _CLAIM_IF_LEADER,
            2,
            self.key,
            marker_key,
            self.token,
            str(time.time()),
            int(ttl_s * 1000),
        )
        if result == -1:
            return None
        return bool(result)


def current_holder(client: redis.Redis, key: str) -> dict[str, Any] | None:
    raw = client.get(key)
    if raw is None:
        return None
    try:
        holder: dict[str, Any] = json.loads(raw)
    except ValueError:
        return {"token": "unreadable"}
    holder["ttl_ms"] = client.pttl(key)
    return holder
