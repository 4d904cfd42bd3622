"""Gmail's per-user quota: each method costs its documented units in a rolling 60 s window.

Calls are counted per method here too, so a test can assert what a sync cost rather than
how long it took.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

#: https://developers.google.com/gmail/api/reference/quota
UNITS = {
    "messages.list": 5,
    "messages.get": 5,
    "messages.attachments.get": 5,
    "history.list": 2,
    "users.getProfile": 1,
}
CALLS = (*UNITS, "token.refresh", "token.authorization_code")
WINDOW_S = 60.0
DEFAULT_UNITS_PER_MINUTE = 15000
#: What a forced 429 (scenario rate_limit_next) asks the client to wait.
FORCED_RETRY_AFTER_S = 1.0


@dataclass(frozen=True)
class Limited:
    """A refused call: the client may retry after ``retry_after_s``."""

    retry_after_s: float

    @property
    def retry_at(self) -> str:
        """Gmail's "Retry after" timestamp: RFC 3339 UTC with milliseconds."""
        at = datetime.now(UTC) + timedelta(seconds=self.retry_after_s)
        return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


@dataclass
class Quota:
    units_per_minute: int = DEFAULT_UNITS_PER_MINUTE
    #: The next N Gmail calls answer 429 whatever the window holds.
    rate_limit_next: int = 0
    calls: Counter[str] = field(default_factory=Counter)
    units_total: int = 0
    peak_units_per_minute: int = 0
    rate_limited: int = 0
    _windows: dict[str, deque[tuple[float, int]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, name: str) -> None:
        """A call that costs no quota units (the token endpoint's grants)."""
        with self._lock:
            self.calls[name] += 1

    def charge(self, user: str, method: str, now: float | None = None) -> Limited | None:
        """Spend ``method``'s units for ``user``, or say how long to wait; refused calls cost 0."""
        now = time.monotonic() if now is None else now
        cost = UNITS[method]
        with self._lock:
            self.calls[method] += 1
            if self.rate_limit_next > 0:
                self.rate_limit_next -= 1
                self.rate_limited += 1
                return Limited(FORCED_RETRY_AFTER_S)
            window = self._windows.setdefault(user, deque())
            while window and window[0][0] <= now - WINDOW_S:
                window.popleft()
            used = sum(units for _, units in window)
            if used + cost > self.units_per_minute:
                self.rate_limited += 1
                return Limited(self._wait(window, used + cost - self.units_per_minute, now))
            window.append((now, cost))
            self.units_total += cost
            self.peak_units_per_minute = max(self.peak_units_per_minute, used + cost)
            return None

    @staticmethod
    def _wait(window: deque[tuple[float, int]], excess: int, now: float) -> float:
        """Seconds until enough of the window's oldest units expire to fit the call."""
        freed = 0
        for at, units in window:
            freed += units
            if freed >= excess:
                return max(1.0, at + WINDOW_S - now)
        return WINDOW_S  # the call alone is over the limit: waiting a window is the honest answer

    def update(self, units_per_minute: int | None, rate_limit_next: int | None) -> None:
        with self._lock:
            if units_per_minute is not None:
                if units_per_minute <= 0:
                    raise ValueError("quota_units_per_minute must be positive")
                self.units_per_minute = units_per_minute
            if rate_limit_next is not None:
                if rate_limit_next < 0:
                    raise ValueError("rate_limit_next must not be negative")
                self.rate_limit_next = rate_limit_next

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            return {
                "calls": {name: self.calls[name] for name in CALLS},
                "units_total": self.units_total,
                "peak_units_per_minute": self.peak_units_per_minute,
                "rate_limited": self.rate_limited,
            }

    def reset_counts(self) -> None:
        """A fresh measurement: windows restart too; the limit and pending forced 429s stay."""
        with self._lock:
            self.calls.clear()
            self.units_total = self.peak_units_per_minute = self.rate_limited = 0
            self._windows.clear()

    def reset(self) -> None:
        self.reset_counts()
        with self._lock:
            self.units_per_minute = DEFAULT_UNITS_PER_MINUTE
            self.rate_limit_next = 0
