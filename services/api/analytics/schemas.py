"""Run analytics: figures computed from the calls' rows, in all and per day."""

from __future__ import annotations

from datetime import date as Date

from pydantic import Field

from services.api.schemas import Query, Shape


class Figures(Shape):
    attempts: int = Field(description="calls placed (each attempt is one)")
    answered: int = Field(description="calls someone or something answered (completed)")
    humans: int = Field(description="answered by a person (AnsweredBy human or unknown, or no AMD)")
    machines: int = Field(description="answered by a machine (AnsweredBy machine_*)")
    fax: int
    answer_rate: float | None = Field(description="answered / attempts (null: no attempts)")
    machine_rate: float | None = Field(description="machines / answered (null: none answered)")
    abandoned: int = Field(description="a person answered and heard no agent within 2 s")
    abandon_rate: float | None = Field(
        description="abandoned / calls judged (a person "
        "answered and the call reached the media server)"
    )
    talk_time_s: int = Field(description="seconds of answered calls")
    cost_estimate: float = Field(description="the provider's price of the priced calls, summed")
    priced_calls: int = Field(description="calls whose price the provider has given so far")
    by_status: dict[str, int]
    dispositions: dict[str, int]


class Day(Figures):
    date: Date = Field(description="UTC date the calls were placed")


class Analytics(Shape):
    """Outbound calls' figures, from the rows as they are now."""

    currency: str = Field(description="of cost_estimate (the provider's price_unit)")
    totals: Figures
    days: list[Day]


class RunAnalytics(Analytics):
    run_id: int


class DailyQuery(Query):
    days: int = Field(30, ge=1, le=366, description="how many days back, today included")
