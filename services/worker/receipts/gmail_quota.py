"""Gmail's per-user quota (15,000 units a minute), kept by design: every API call first takes
its cost from a token bucket in Redis that all worker processes share, per Gmail account.

The bucket refills at 90 % of the quota spread evenly over the minute and holds at most 5 % of
it, so any 60-second window spends at most 95 % of the quota: a sync that never waits for a 429
to find the limit. The costs are Google's published ones for the methods used.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

#: Units per call (developers.google.com/gmail/api/reference/quota).
COSTS = {
    "users.getProfile": 1,
    "users.messages.list": 5,
    "users.messages.get": 5,
    "users.messages.attachments.get": 5,
    "users.history.list": 2,
}
REFILL_SHARE = 0.90
BURST_SHARE = 0.05

# Atomic: refill by elapsed time (Redis's clock, one for every worker), then take or say how
# long to wait. State expires when idle so a quiet inbox leaves nothing behind.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = t[1] * 1000 + t[2] / 1000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - ts) * rate)
local wait = 0
if tokens >= cost then tokens = tokens - cost else wait = math.ceil((cost - tokens) / rate) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], 120000)
return wait
"""


class GmailQuota:
    def __init__(
        self,
        client: redis.Redis,
        account: str,
        units_per_minute: int,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.key = f"gmail-quota:{account.lower()}"
        self.rate_per_ms = units_per_minute * REFILL_SHARE / 60_000
        self.burst = max(units_per_minute * BURST_SHARE, max(COSTS.values()))
        self._take = client.register_script(_TAKE)
        self._sleep = sleep
        self.units = 0
        self.waited_s = 0.0

    def take(self, method: str) -> None:
        """Block until ``method``'s cost is available, then spend it."""
        cost = COSTS[method]
        while True:
            wait_ms = int(self._take(keys=[self.key], args=[self.rate_per_ms, self.burst, cost]))
            if wait_ms == 0:
                self.units += cost
                return
            self.waited_s += wait_ms / 1000
            self._sleep(wait_ms / 1000)
