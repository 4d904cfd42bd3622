"""Daily schedules per lead: CRUD, each one's occurrences, and the manual due check."""

from __future__ import annotations

from typing import Any

import dramatiq
from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import func, select

from libs.common.contracts import SCHEDULES_CHECK_DUE
from libs.common.models import Business, Lead, Schedule, ScheduleOccurrence, utcnow
from libs.common.queue_health import ENQUEUE_ERRORS, QueueUnavailable, check_broker
from libs.common.redis_client import shared_redis
from libs.common.schedules.definition import (
    InvalidSchedule,
    check_local_time,
    day_names,
    days_mask,
    effective_timezone,
    refresh_next_due,
)
from libs.common.settings import Settings
from libs.common.web import rate_limit
from libs.common.web.db import get_session
from libs.common.web.errors import ApiError
from libs.common.web.validation import (
    bad_request,
    json_object,
    optional_json_object,
    pagination,
    query_choice,
    row_id,
)
from services.api.auth import current_business_id, current_principal

blueprint = Blueprint("schedules", __name__)

FIELDS = {"lead_id", "local_time", "timezone", "days", "enabled"}


def schedule_dict(schedule: Schedule) -> dict[str, Any]:
    return {
        "id": schedule.id,
        "lead_id": schedule.lead_id,
        "enabled": schedule.enabled,
        "local_time": schedule.local_time,
        "timezone": schedule.timezone,
        "days": day_names(schedule.days_mask),
        "next_due_at": schedule.next_due_at.isoformat() if schedule.next_due_at else None,
        "created_at": schedule.created_at.isoformat(),
        "updated_at": schedule.updated_at.isoformat(),
    }


def occurrence_dict(occurrence: ScheduleOccurrence) -> dict[str, Any]:
    return {
        "local_date": occurrence.local_date.isoformat(),
        "due_at": occurrence.due_at.isoformat(),
        "status": occurrence.status.value,
        "call_job_id": occurrence.call_job_id,
        "error": occurrence.error_message,
    }


def _schedule_or_404(schedule_id: int) -> Schedule:
    schedule = get_session().scalar(
        select(Schedule).where(
            Schedule.id == schedule_id, Schedule.business_id == current_business_id()
        )
    )
    if schedule is None:
        raise ApiError(404, "not_found", f"no schedule {schedule_id}")
    return schedule


def _check_fields(body: dict[str, Any]) -> None:
    unknown = set(body) - FIELDS
    if unknown:
        raise bad_request(f"unknown fields: {', '.join(sorted(unknown))}")
    if "enabled" in body and not isinstance(body["enabled"], bool):
        raise bad_request("enabled must be true or false")


def _zone_candidates(schedule_lead: Lead) -> list[str | None]:
    business = get_session().get_one(Business, schedule_lead.business_id)
    return [schedule_lead.timezone, business.timezone]


@blueprint.post("/schedules")
def create_schedule() -> tuple[Response, int]:
    body = json_object()
    _check_fields(body)
    lead_id = body.get("lead_id")
    if lead_id is None:
        raise bad_request("lead_id is required (a positive integer)")
    row_id(lead_id, "lead_id")
    session = get_session()
    lead = session.scalar(
        select(Lead).where(Lead.id == lead_id, Lead.business_id == current_business_id())
    )
    if lead is None:
        raise bad_request(f"unknown lead {lead_id}")
    if "local_time" not in body:
        raise bad_request("local_time is required (HH:MM, 24-hour)")
    try:
        schedule = Schedule(
            business_id=lead.business_id,
            lead_id=lead.id,
            enabled=body.get("enabled", True),
            local_time=check_local_time(body["local_time"]),
            timezone=effective_timezone(body.get("timezone"), _zone_candidates(lead)),
            days_mask=days_mask(body["days"]) if "days" in body else 0b1111111,
        )
    except InvalidSchedule as exc:
        raise bad_request(str(exc)) from None
    # Locked so two creates for one lead cannot both pass the check below.
    session.scalar(select(Lead.id).where(Lead.id == lead.id).with_for_update())
    if session.scalar(select(Schedule.id).where(Schedule.lead_id == lead.id)) is not None:
        raise ApiError(409, "conflict", f"lead {lead.id} already has a schedule; PATCH it")
    refresh_next_due(schedule, utcnow())
    session.add(schedule)
    session.commit()
    return jsonify(schedule_dict(schedule)), 201


@blueprint.get("/schedules")
def list_schedules() -> Response:
    page, per_page = pagination()
    query = select(Schedule).where(Schedule.business_id == current_business_id())
    enabled = query_choice("enabled", {"true", "false"})
    if enabled is not None:
        query = query.where(Schedule.enabled.is_(enabled == "true"))
    session = get_session()
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(Schedule.id).offset((page - 1) * per_page).limit(per_page)
    )
    return jsonify(
        {
            "items": [schedule_dict(s) for s in rows],
            "page": page,
            "per_page": per_page,
            "total": total,
        }
    )


@blueprint.get("/schedules/<int:schedule_id>")
def get_schedule(schedule_id: int) -> Response:
    return jsonify(schedule_dict(_schedule_or_404(schedule_id)))


@blueprint.patch("/schedules/<int:schedule_id>")
def update_schedule(schedule_id: int) -> Response:
    body = json_object()
    _check_fields(body)
    if "lead_id" in body:
        raise bad_request("lead_id cannot change; delete the schedule and create another")
    schedule = _schedule_or_404(schedule_id)
    session = get_session()
    try:
        if "local_time" in body:
            schedule.local_time = check_local_time(body["local_time"])
        if "timezone" in body:
            # null goes back to the lead's zone, else the business's.
            lead = session.get_one(Lead, schedule.lead_id)
            schedule.timezone = effective_timezone(body["timezone"], _zone_candidates(lead))
        if "days" in body:
            schedule.days_mask = days_mask(body["days"])
    except InvalidSchedule as exc:
        raise bad_request(str(exc)) from None
    if "enabled" in body:
        schedule.enabled = body["enabled"]
    # Today's call, if already placed, is not placed again: occurrences are per local date.
    refresh_next_due(schedule, utcnow())
    session.commit()
    return jsonify(schedule_dict(schedule))


@blueprint.delete("/schedules/<int:schedule_id>")
def delete_schedule(schedule_id: int) -> tuple[str, int]:
    session = get_session()
    session.delete(_schedule_or_404(schedule_id))
    session.commit()
    return "", 204


@blueprint.get("/schedules/<int:schedule_id>/occurrences")
def list_occurrences(schedule_id: int) -> Response:
    schedule = _schedule_or_404(schedule_id)
    page, per_page = pagination()
    query = select(ScheduleOccurrence).where(ScheduleOccurrence.schedule_id == schedule.id)
    session = get_session()
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(ScheduleOccurrence.local_date.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    return jsonify(
        {
            "items": [occurrence_dict(o) for o in rows],
            "page": page,
            "per_page": per_page,
            "total": total,
        }
    )


@blueprint.post("/schedules/trigger")
def trigger() -> tuple[Response, int]:
    """Run the due check now: for the caller's business, or (operator) one business or all."""
    settings: Settings = current_app.config["SETTINGS"]
    principal = current_principal()
    body = optional_json_object()
    business_id = body.get("business_id")
    # Checked for both roles first: True == 1 in Python, so a business token's own-id
    # comparison alone would take {"business_id": true} for business 1.
    if business_id is not None:
        row_id(business_id, "business_id")
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
    body = {"queued": True, "business_id": business_id, "message_id": message.message_id}
    return jsonify(body), 202
