"""Run analytics, computed from the calls' rows: attempts, answers (human, machine, fax),
talk time, dispositions and the provider's price, per run and per day (UTC).

Nothing here is a counter kept beside the rows: a figure is what the rows say, so it matches
the provider's own ledger call for call.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from libs.campaigns.outcomes.rules import outcome_of
from libs.common.models import Call


def price_micros(price: object) -> int | None:
    """Twilio's ``price`` ("-0.01400", a charge is negative) in positive millionths."""
    if price in (None, ""):
        return None
    try:
        return abs(int((Decimal(str(price)) * 1_000_000).to_integral_value()))
    except InvalidOperation:
        return None


@dataclass
class Figures:
    """One run's (or one day's) figures."""

    attempts: int = 0
    answered: int = 0
    humans: int = 0
    machines: int = 0
    fax: int = 0
    abandoned: int = 0
    judged: int = 0
    talk_time_s: int = 0
    cost_micros: int = 0
    priced_calls: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    dispositions: dict[str, int] = field(default_factory=dict)

    def add(self, status: str, answered_by: str | None, duration_s: int | None,
            price: int | None, priced: int, disposition: str | None, n: int,
            abandoned: bool | None = None) -> None:  # fmt: skip
        self.attempts += n
        if abandoned is not None:
            self.judged += n
            self.abandoned += n if abandoned else 0
        self.by_status[status] = self.by_status.get(status, 0) + n
        if status == "completed":
            self.answered += n
            outcome = outcome_of(status, answered_by)
            if outcome == "machine":
                self.machines += n
            elif outcome == "fax":
                self.fax += n
            else:
                self.humans += n
            self.talk_time_s += duration_s or 0
        self.cost_micros += price or 0
        self.priced_calls += priced
        if disposition:
            self.dispositions[disposition] = self.dispositions.get(disposition, 0) + n

    def shown(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "answered": self.answered,
            "humans": self.humans,
            "machines": self.machines,
            "fax": self.fax,
            "answer_rate": _rate(self.answered, self.attempts),
            "machine_rate": _rate(self.machines, self.answered),
            "abandoned": self.abandoned,
            "abandon_rate": _rate(self.abandoned, self.judged),
            "talk_time_s": self.talk_time_s,
            "cost_estimate": round(self.cost_micros / 1_000_000, 6),
            "priced_calls": self.priced_calls,
            "by_status": dict(sorted(self.by_status.items())),
            "dispositions": dict(sorted(self.dispositions.items())),
        }


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _day(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def figures(
    session: Session, business_id: int, *, run_id: int | None = None,
    since: datetime | None = None,
) -> tuple[Figures, dict[date, Figures]]:  # fmt: skip
    """Outbound calls' figures in all and per UTC day of the call's creation: a run's, or the
    business's since a time. One grouped query, whatever the number of calls."""
    day = func.date(Call.created_at)
    query = (
        select(day, Call.status, Call.answered_by, Call.disposition,
               func.count(), func.sum(Call.duration_s), func.sum(Call.price_micros),
               func.count(Call.price_micros), Call.abandoned)
        .where(Call.business_id == business_id, Call.direction == "outbound")
        .group_by(day, Call.status, Call.answered_by, Call.disposition, Call.abandoned)
    )  # fmt: skip
    if run_id is not None:
        query = query.where(Call.run_id == run_id)
    if since is not None:
        query = query.where(Call.created_at >= since)
    return _fold(session.execute(query).all())


def _fold(rows: Iterable[Any]) -> tuple[Figures, dict[date, Figures]]:
    total, days = Figures(), dict[date, Figures]()
    for day, status, answered_by, disposition, n, talk, price, priced, abandoned in rows:
        values = (status, answered_by, int(talk or 0), int(price or 0), int(priced),
                  disposition, int(n), abandoned)  # fmt: skip
        total.add(*values)
        days.setdefault(_day(day), Figures()).add(*values)
    return total, dict(sorted(days.items()))
