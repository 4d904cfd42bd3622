"""What a schedule is made of, validated: local time, IANA zone, days of the week.

Every change to these goes through ``refresh_next_due`` so the indexed ``next_due_at`` the tick
reads is never stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from libs.common.models import Schedule
from libs.telephony.calling_window import InvalidWindow, check_zone, parse_hhmm
from libs.telephony.schedules.occurrences import next_occurrence

#: Index = bit = Python's date.weekday().
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class InvalidSchedule(ValueError):
    """Bad schedule input; the message names the field."""


def check_local_time(value: object) -> str:
    try:
        parse_hhmm(value, "local_time")
    except InvalidWindow as exc:
        raise InvalidSchedule(str(exc)) from None
    assert isinstance(value, str)
    return value


def check_timezone(value: object) -> str:
    try:
        check_zone(value)
    except InvalidWindow as exc:
        raise InvalidSchedule(f"timezone: {exc}") from None
    assert isinstance(value, str)
    return value


def days_mask(value: object) -> int:
    """["mon", "wed"] → bit mask; every day when the list names all seven."""
    if not isinstance(value, list) or not value:
        raise InvalidSchedule(f"days must be a non-empty array of {', '.join(DAY_NAMES)}")
    mask = 0
    for day in value:
        if not isinstance(day, str) or day.lower() not in DAY_NAMES:
            raise InvalidSchedule(f"days: {day!r} is not one of {', '.join(DAY_NAMES)}")
        mask |= 1 << DAY_NAMES.index(day.lower())
    return mask


def day_names(mask: int) -> list[str]:
    return [name for bit, name in enumerate(DAY_NAMES) if mask & (1 << bit)]


def effective_timezone(given: str | None, candidates: Sequence[str | None]) -> str:
    """The zone given, else the first known one (the lead's, then the business's)."""
    if given is not None:
        return check_timezone(given)
    for zone in candidates:
        if zone:
            return zone
    return "UTC"


def refresh_next_due(schedule: Schedule, now: datetime) -> None:
    """Recompute the next firing strictly after ``now`` (None while disabled)."""
    found = None
    if schedule.enabled:
        found = next_occurrence(now, schedule.local_time, schedule.timezone, schedule.days_mask)
    schedule.next_due_at = found[0] if found else None
