"""Calling hours in the called party's local time (US rules: 08:00 to 21:00 by default)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class InvalidWindow(ValueError):
    pass


def parse_hhmm(value: object, field: str) -> time:
    if not isinstance(value, str) or not _HHMM.match(value):
        raise InvalidWindow(f"{field} must be HH:MM (24-hour), e.g. 08:00")
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def check_zone(name: object) -> ZoneInfo:
    if not isinstance(name, str) or not name or len(name) > 64:
        raise InvalidWindow("time zone must be an IANA name such as America/New_York")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidWindow(f"{name!r} is not an IANA time zone") from None


def check_window(start: str, end: str) -> None:
    if parse_hhmm(start, "window start") >= parse_hhmm(end, "window end"):
        raise InvalidWindow("window start must be before window end")


def next_allowed(now: datetime, zone: str, start: str, end: str) -> datetime:
    """``now`` if inside the window in ``zone``, else the UTC instant the window next opens."""
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    opens, closes = parse_hhmm(start, "start"), parse_hhmm(end, "end")
    if opens <= local.time() < closes:
        return now
    day = local.date() if local.time() < opens else local.date() + timedelta(days=1)
    # fold=0 and a round trip through UTC: a wall time skipped by DST moves to the next
    # valid instant instead of raising.
    opening = datetime.combine(day, opens, tzinfo=tz)
    return opening.astimezone(UTC)
