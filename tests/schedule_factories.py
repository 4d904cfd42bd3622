"""Rows for schedule tests: a business with one lead per schedule."""

from __future__ import annotations

from datetime import datetime

from libs.common.db import Database
from libs.common.models import ALL_DAYS, Business, Lead, Schedule
from libs.telephony.schedules.definition import refresh_next_due
from tests.campaign_factories import phone


def make_schedules(
    db: Database,
    specs: list[tuple[str, str]],
    now: datetime,
    *,
    days_mask: int = ALL_DAYS,
    limit: int = 3,
    first_phone: int = 0,
) -> list[int]:
    """One schedule per (local time, zone), each for its own lead; next_due_at as of ``now``."""
    with db.session() as session:
        business = Business(name="Daily Co", timezone="UTC", max_concurrent_calls=limit)
        session.add(business)
        session.flush()
        ids = []
        for i, (local_time, zone) in enumerate(specs):
            lead = Lead(
                business_id=business.id,
                name=f"Lead {i}",
                phone_e164=phone(first_phone + i),
                timezone=zone,
            )
            session.add(lead)
            session.flush()
            schedule = Schedule(
                business_id=business.id,
                lead_id=lead.id,
                local_time=local_time,
                timezone=zone,
                days_mask=days_mask,
                enabled=True,
            )
            refresh_next_due(schedule, now)
            session.add(schedule)
            session.flush()
            ids.append(schedule.id)
        session.commit()
    return ids
