"""Run analytics: per run, and the business's days, computed from the calls' rows."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from flask import Blueprint
from sqlalchemy import select

from libs.campaigns.outcomes import analytics
from libs.common.models import Call, Run
from libs.web.db import get_session
from libs.web.errors import ApiError
from services.api.analytics.schemas import Analytics, DailyQuery, Day, Figures, RunAnalytics
from services.api.auth import current_business_id
from services.api.spec import answers, api

blueprint = Blueprint("analytics", __name__)


def _currency(business_id: int) -> str:
    unit = get_session().scalar(
        select(Call.price_unit)
        .where(Call.business_id == business_id, Call.price_unit.is_not(None))
        .limit(1)
    )
    return unit or "USD"


def _shown(business_id: int, found: tuple[analytics.Figures, dict]) -> dict:  # type: ignore[type-arg]
    totals, days = found
    return {
        "currency": _currency(business_id),
        "totals": Figures(**totals.shown()),
        "days": [Day(date=day, **figures.shown()) for day, figures in days.items()],
    }


@blueprint.get("/runs/<int:run_id>/analytics")
@api.validate(resp=answers({200: RunAnalytics}, 404))
def run_analytics(run_id: int) -> RunAnalytics:
    """A run's attempts, answer and machine rates, talk time, dispositions and cost, in all
    and per day."""
    business_id = current_business_id()
    session = get_session()
    found = session.scalar(select(Run.id).where(Run.id == run_id, Run.business_id == business_id))
    if found is None:
        raise ApiError(404, "not_found", f"no run {run_id}")
    figures = analytics.figures(session, business_id, run_id=run_id)
    return RunAnalytics(run_id=run_id, **_shown(business_id, figures))


@blueprint.get("/analytics/daily")
@api.validate(resp=answers({200: Analytics}))
def daily(query: DailyQuery) -> Analytics:
    """Every run's calls together, per day, for the last ``days`` days (UTC)."""
    business_id = current_business_id()
    today = datetime.now(UTC).date()
    since = datetime.combine(today - timedelta(days=query.days - 1), time(), tzinfo=UTC)
    figures = analytics.figures(get_session(), business_id, since=since)
    return Analytics(**_shown(business_id, figures))
