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

#: Up to ARGV[2] consecutive slots starting within ARGV[3] microseconds: {granted, wait of the
#: first}. Call k of those granted may start k intervals after the first.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local wanted = tonumber(ARGV[2])
local horizon = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - now > horizon then
  return {0, tat - now}
end
local granted = math.min(wanted, math.floor((now + horizon - tat) / interval) + 1)
local free_at = tat + granted * interval
redis.call('SET', KEYS[1], free_at, 'PX', math.ceil((free_at - now) / 1000) + 1000)
return {granted, tat - now}
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

    def reserve(self, wanted: int, horizon_s: float) -> tuple[int, float]:
        """Up to ``wanted`` slots, the first starting within ``horizon_s``: how many were taken
        and the seconds until the first may start; call k starts k x ``interval_s`` later."""
        granted, wait_us = self.client.eval(
            _RESERVE, 1, self.key, self.interval_us, wanted, int(horizon_s * 1_000_000)
        )
        return int(granted), int(wait_us) / 1_000_000

    @property
    def interval_s(self) -> float:
        return self.interval_us / 1_000_000

    def refund(self, count: int = 1) -> None:
        """Give back slots taken for calls that were not placed after all."""
        self.client.eval(_REFUND, 1, self.key, self.interval_us * count)
