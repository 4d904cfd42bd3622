"""Daily schedules per lead: CRUD, each one's occurrences, and the manual due check."""

from __future__ import annotations

import dramatiq
from flask import Blueprint, Response, current_app
from sqlalchemy import func, select

from libs.common.contracts import SCHEDULES_CHECK_DUE
from libs.common.models import Business, Lead, ScheduleOccurrence, utcnow
from libs.common.models import Schedule as ScheduleRow
from libs.common.redis_client import shared_redis
from libs.common.settings import Settings
from libs.queueops.queue_health import ENQUEUE_ERRORS, QueueUnavailable, check_broker
from libs.telephony.schedules.definition import days_mask, effective_timezone, refresh_next_due
from libs.web import rate_limit
from libs.web.db import get_session
from libs.web.errors import ApiError
from libs.web.validation import bad_request
from services.api.auth import current_business_id, current_principal
from services.api.schedules.schemas import (
    Occurrence,
    OccurrencePage,
    Schedule,
    ScheduleFilter,
    ScheduleInput,
    SchedulePage,
    ScheduleUpdate,
    Triggered,
    TriggerInput,
)
from services.api.schemas import Paging
from services.api.spec import answers, api

blueprint = Blueprint("schedules", __name__)


def _schedule_or_404(schedule_id: int) -> ScheduleRow:
    schedule = get_session().scalar(
        select(ScheduleRow).where(
            ScheduleRow.id == schedule_id, ScheduleRow.business_id == current_business_id()
        )
    )
    if schedule is None:
        raise ApiError(404, "not_found", f"no schedule {schedule_id}")
    return schedule


def _zone_candidates(schedule_lead: Lead) -> list[str | None]:
    business = get_session().get_one(Business, schedule_lead.business_id)
    return [schedule_lead.timezone, business.timezone]


@blueprint.post("/schedules")
@api.validate(resp=answers({201: Schedule}, (409, "the lead already has a schedule")))
def create_schedule(json: ScheduleInput) -> tuple[Schedule, int]:
    """Call a lead every day (or on some days) at a local time."""
    session = get_session()
    lead = session.scalar(
        select(Lead).where(Lead.id == json.lead_id, Lead.business_id == current_business_id())
    )
    if lead is None:
        raise bad_request(f"unknown lead {json.lead_id}")
    schedule = ScheduleRow(
        business_id=lead.business_id,
        lead_id=lead.id,
        enabled=json.enabled,
        local_time=json.local_time,
        timezone=effective_timezone(json.timezone, _zone_candidates(lead)),
        days_mask=days_mask(json.days) if json.days else 0b1111111,
    )
    # Locked so two creates for one lead cannot both pass the check below.
    session.scalar(select(Lead.id).where(Lead.id == lead.id).with_for_update())
    if session.scalar(select(ScheduleRow.id).where(ScheduleRow.lead_id == lead.id)) is not None:
        raise ApiError(409, "conflict", f"lead {lead.id} already has a schedule; PATCH it")
    refresh_next_due(schedule, utcnow())
    session.add(schedule)
    session.commit()
    return Schedule.model_validate(schedule), 201


@blueprint.get("/schedules")
@api.validate(resp=answers({200: SchedulePage}))
def list_schedules(query: ScheduleFilter) -> SchedulePage:
    rows = select(ScheduleRow).where(ScheduleRow.business_id == current_business_id())
    if query.enabled is not None:
        rows = rows.where(ScheduleRow.enabled.is_(query.enabled))
    session = get_session()
    total = session.scalar(select(func.count()).select_from(rows.subquery())) or 0
    page = session.scalars(rows.order_by(ScheduleRow.id).offset(query.offset).limit(query.per_page))
    items = [Schedule.model_validate(row) for row in page]
    return SchedulePage(items=items, page=query.page, per_page=query.per_page, total=total)


@blueprint.get("/schedules/<int:schedule_id>")
@api.validate(resp=answers({200: Schedule}, 404))
def get_schedule(schedule_id: int) -> Schedule:
    return Schedule.model_validate(_schedule_or_404(schedule_id))


@blueprint.patch("/schedules/<int:schedule_id>")
@api.validate(resp=answers({200: Schedule}, 404))
def update_schedule(schedule_id: int, json: ScheduleUpdate) -> Schedule:
    """Change time, zone, days or enabled; next_due_at is recomputed."""
    schedule = _schedule_or_404(schedule_id)
    if json.local_time is not None:
        schedule.local_time = json.local_time
    if "timezone" in json.model_fields_set:
        # null goes back to the lead's zone, else the business's.
        lead = get_session().get_one(Lead, schedule.lead_id)
        schedule.timezone = effective_timezone(json.timezone, _zone_candidates(lead))
    if json.days is not None:
        schedule.days_mask = days_mask(json.days)
    if json.enabled is not None:
        schedule.enabled = json.enabled
    # Today's call, if already placed, is not placed again: occurrences are per local date.
    refresh_next_due(schedule, utcnow())
    get_session().commit()
    return Schedule.model_validate(schedule)


@blueprint.delete("/schedules/<int:schedule_id>")
@api.validate(resp=answers({204: "deleted"}, 404))
def delete_schedule(schedule_id: int) -> Response:
    """Delete a schedule (calls already placed are kept)."""
    session = get_session()
    session.delete(_schedule_or_404(schedule_id))
    session.commit()
    return Response(status=204)


@blueprint.get("/schedules/<int:schedule_id>/occurrences")
@api.validate(resp=answers({200: (OccurrencePage, "newest first")}, 404))
def list_occurrences(schedule_id: int, query: Paging) -> OccurrencePage:
    """What happened on each local date (placed, missed, skipped, failed)."""
    schedule = _schedule_or_404(schedule_id)
    rows = select(ScheduleOccurrence).where(ScheduleOccurrence.schedule_id == schedule.id)
    session = get_session()
    total = session.scalar(select(func.count()).select_from(rows.subquery())) or 0
    page = session.scalars(
        rows.order_by(ScheduleOccurrence.local_date.desc())
        .offset(query.offset)
        .limit(query.per_page)
    )
    items = [Occurrence.model_validate(row) for row in page]
    return OccurrencePage(items=items, page=query.page, per_page=query.per_page, total=total)


@blueprint.post("/schedules/trigger")
@api.validate(
    resp=answers(
        {202: (Triggered, "the due check was queued")},
        (403, "a business token named another business"),
        429,
        503,
        auth="any",
    )
)
def trigger(json: TriggerInput) -> tuple[Triggered, int]:
    """Run the due check now: for the caller's business, or (operator) one business or all."""
    settings: Settings = current_app.config["SETTINGS"]
    principal = current_principal()
    business_id = json.business_id  # strict: {"business_id": true} is not business 1
    if principal.is_operator:
        if business_id is not None and get_session().get(Business, business_id) is None:
            raise bad_request(f"unknown business {business_id}")
    else:
        if business_id not in (None, principal.business_id):
            raise ApiError(403, "forbidden", "a business token triggers its own business only")
        business_id = principal.business_id
    check_broker(settings.queue_broker_url, settings.broker_check_timeout_s)
    assert settings.redis_url is not None
    rate_limit.enforce(
        shared_redis(settings.redis_url, settings.broker_check_timeout_s),
        "schedules_trigger",
        f"token{principal.token_id}",
        settings.schedule_trigger_per_minute,
    )
    message = SCHEDULES_CHECK_DUE.message(business_id=business_id)
    try:
        dramatiq.get_broker().enqueue(message)
    except ENQUEUE_ERRORS as exc:
        raise QueueUnavailable("the job queue became unreachable; nothing was queued") from exc
    return Triggered(queued=True, business_id=business_id, message_id=message.message_id), 202
