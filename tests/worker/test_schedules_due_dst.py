"""A controlled clock ticks every 5 minutes across DST changes: every schedule fires exactly
once per local day, at the instant written down by hand in the tables below.

The expected instants are computed by hand from the zones' rules, not by the code under test:
New York (EST -5 / EDT -4, 2026-03-08 and 2026-11-01 at 02:00), Berlin (CET +1 / CEST +2,
2026-03-29 02:00 and 2026-10-25 03:00), Kolkata (+05:30, no DST), Chatham (+12:45 / +13:45,
2026-04-05 03:45 → 02:45 and 2026-09-27 02:45 → 03:45).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from dramatiq.brokers.stub import StubBroker

from libs.common.db import Database
from services.worker.schedules.due import process_due
from tests.schedule_factories import make_schedules

TICK = timedelta(minutes=5)
NY, BERLIN, KOLKATA, CHATHAM = (
    "America/New_York",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Pacific/Chatham",
)


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# case → (window start, window end, {(local time, zone): [(local date, UTC instant), ...]})
CASES = {
    "new_york_spring_forward": (
        "2026-03-07T00:00",
        "2026-03-10T00:00",
        {
            ("09:00", NY): [
                ("2026-03-07", "2026-03-07T14:00"),
                ("2026-03-08", "2026-03-08T13:00"),
                ("2026-03-09", "2026-03-09T13:00"),
            ],
            # 02:30 does not exist on the 8th: once, at 03:00 EDT.
            ("02:30", NY): [
                ("2026-03-07", "2026-03-07T07:30"),
                ("2026-03-08", "2026-03-08T07:00"),
                ("2026-03-09", "2026-03-09T06:30"),
            ],
            ("09:00", KOLKATA): [
                ("2026-03-07", "2026-03-07T03:30"),
                ("2026-03-08", "2026-03-08T03:30"),
                ("2026-03-09", "2026-03-09T03:30"),
            ],
            # Local midnight in Kolkata is the previous UTC day: the local date is what counts.
            ("00:00", KOLKATA): [
                ("2026-03-08", "2026-03-07T18:30"),
                ("2026-03-09", "2026-03-08T18:30"),
                ("2026-03-10", "2026-03-09T18:30"),
            ],
        },
    ),
    "new_york_fall_back": (
        "2026-10-31T00:00",
        "2026-11-03T00:00",
        {
            ("09:00", NY): [
                ("2026-10-31", "2026-10-31T13:00"),
                ("2026-11-01", "2026-11-01T14:00"),
                ("2026-11-02", "2026-11-02T14:00"),
            ],
            # 01:30 happens twice on the 1st (EDT, then EST): once, at the first.
            ("01:30", NY): [
                ("2026-10-31", "2026-10-31T05:30"),
                ("2026-11-01", "2026-11-01T05:30"),
                ("2026-11-02", "2026-11-02T06:30"),
            ],
        },
    ),
    "berlin_spring_forward": (
        "2026-03-27T23:00",
        "2026-03-30T22:00",
        {
            ("02:30", BERLIN): [
                ("2026-03-28", "2026-03-28T01:30"),
                ("2026-03-29", "2026-03-29T01:00"),  # 03:00 CEST
                ("2026-03-30", "2026-03-30T00:30"),
            ],
            ("09:00", BERLIN): [
                ("2026-03-28", "2026-03-28T08:00"),
                ("2026-03-29", "2026-03-29T07:00"),
                ("2026-03-30", "2026-03-30T07:00"),
            ],
        },
    ),
    "berlin_fall_back": (
        "2026-10-23T22:00",
        "2026-10-26T23:00",
        {
            ("02:30", BERLIN): [
                ("2026-10-24", "2026-10-24T00:30"),
                ("2026-10-25", "2026-10-25T00:30"),  # the first 02:30 (CEST)
                ("2026-10-26", "2026-10-26T01:30"),
            ],
            ("09:00", BERLIN): [
                ("2026-10-24", "2026-10-24T07:00"),
                ("2026-10-25", "2026-10-25T08:00"),
                ("2026-10-26", "2026-10-26T08:00"),
            ],
        },
    ),
    "chatham_spring_forward": (
        "2026-09-25T00:00",
        "2026-09-28T00:00",
        {
            ("03:00", CHATHAM): [
                ("2026-09-26", "2026-09-25T14:15"),
                ("2026-09-27", "2026-09-26T14:00"),  # 03:00 does not exist: 03:45 CHADT
                ("2026-09-28", "2026-09-27T13:15"),
            ],
            ("09:00", CHATHAM): [
                ("2026-09-26", "2026-09-25T20:15"),
                ("2026-09-27", "2026-09-26T19:15"),
                ("2026-09-28", "2026-09-27T19:15"),
            ],
        },
    ),
    "chatham_fall_back": (
        "2026-04-03T00:00",
        "2026-04-06T00:00",
        {
            ("03:00", CHATHAM): [
                ("2026-04-04", "2026-04-03T13:15"),
                ("2026-04-05", "2026-04-04T13:15"),  # the first 03:00 (CHADT)
                ("2026-04-06", "2026-04-05T14:15"),
            ],
            ("09:00", CHATHAM): [
                ("2026-04-04", "2026-04-03T19:15"),
                ("2026-04-05", "2026-04-04T20:15"),
                ("2026-04-06", "2026-04-05T20:15"),
            ],
        },
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_schedule_fires_once_per_local_day_at_the_right_instant(
    db: Database, case: str
) -> None:
    start_text, end_text, expected = CASES[case]
    start, end = _utc(start_text), _utc(end_text)
    specs = list(expected)
    ids = make_schedules(db, specs, start)
    spec_of = dict(zip(ids, specs, strict=True))
    broker = StubBroker()
    broker.declare_queue("high")

    fired: dict[tuple[str, str], list[tuple[str, datetime]]] = defaultdict(list)
    now = start
    while now < end:
        result = process_due(db, broker, now, grace_s=3600)
        for schedule_id, local_date in result.placed:
            fired[spec_of[schedule_id]].append((local_date, now))
        now += TICK

    for spec, days in expected.items():
        # Every expected instant is on the 5-minute grid, so the tick fires exactly there.
        assert fired[spec] == [(day, _utc(at)) for day, at in days], spec
    assert broker.queues["high"].qsize() == sum(len(days) for days in expected.values())
