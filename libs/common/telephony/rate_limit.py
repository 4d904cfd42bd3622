"""An account-wide calls-per-second limit shared by every worker process, kept in Redis.

GCRA (a leaky bucket with no burst): each call takes the next free slot ``1/cps`` seconds after
the previous one. Redis's own clock is used, so processes on different hosts agree.
"""

from __future__ import annotations

import redis

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - now > 0 then
  return tat - now
end
redis.call('SET', KEYS[1], tat + interval, 'PX', math.ceil(interval / 1000) + 1000)
return 0
"""

_REFUND = """
local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
if tat > 0 then
  redis.call('SET', KEYS[1], tat - tonumber(ARGV[1]), 'KEEPTTL')
end
return 1
"""


class CallRateLimiter:
    def __init__(self, client: redis.Redis, cps: float, key: str = "switchboard:cps") -> None:
        if cps <= 0:
            raise ValueError("calls per second must be positive")
        self.client, self.key = client, key
        self.interval_us = int(1_000_000 / cps)

    def try_acquire(self) -> float:
        """0.0 when a call may start now (and the slot is taken), else seconds to wait."""
        wait_us = int(self.client.eval(_ACQUIRE, 1, self.key, self.interval_us))
        return wait_us / 1_000_000

    def refund(self) -> None:
        """Give back a slot taken for a call that was not placed after all."""
        self.client.eval(_REFUND, 1, self.key, self.interval_us)
