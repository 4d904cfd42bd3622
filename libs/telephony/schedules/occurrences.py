"""When a daily schedule fires, in its own time zone, with DST handled deliberately:

- a local time that does not exist (spring forward) fires once, at the first valid instant
  after the gap (02:30 on a New York spring-forward day fires at 03:00 EDT);
- a local time that occurs twice (fall back) fires once, at its first occurrence.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from libs.telephony.calling_window import parse_hhmm


def instant_on(day: date, local_time: time, zone: ZoneInfo) -> datetime:
    """The UTC instant ``local_time`` happens on ``day`` in ``zone``."""
    first = datetime.combine(day, local_time, tzinfo=zone)  # fold=0: the first of two
    utc = first.astimezone(UTC)
    wall = datetime.combine(day, local_time)
    if utc.astimezone(zone).replace(tzinfo=None) == wall:
        return utc
    # In a spring-forward gap: fold=1 lands before the gap, fold=0 after it. The first valid
    # instant whose wall clock is at or past the requested time is the end of the gap; the
    # search is over whole seconds, as transitions are.
    low = int(first.replace(fold=1).astimezone(UTC).timestamp())
    high = int(utc.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def next_occurrence(
    after: datetime, local_time: str, zone_name: str, days_mask: int
) -> tuple[datetime, date] | None:
    """The first firing strictly after ``after``: (UTC instant, local date); None if no day."""
    if not days_mask:
        return None
    zone, at = ZoneInfo(zone_name), parse_hhmm(local_time, "local_time")
    day = after.astimezone(zone).date() - timedelta(days=1)
    for _ in range(9):
        if days_mask & (1 << day.weekday()):
            instant = instant_on(day, at, zone)
            if instant > after:
                return instant, day
        day += timedelta(days=1)
    return None
