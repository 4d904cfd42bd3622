"""Leads: create one, bulk, CSV import (a BackgroundJob), list, update, delete; the DNC list."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request
from pydantic import ValidationError
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from libs.campaigns.leads import LeadInput as Upsert
from libs.campaigns.leads import upsert_leads
from libs.common.contracts import LEADS_IMPORT_CSV
from libs.common.models import BackgroundJob, Upload
from libs.common.models import DncEntry as DncRow
from libs.common.models import Lead as LeadRow
from libs.common.settings import Settings
from libs.events.catalogue import lead_data
from libs.events.emit import emit
from libs.queueops.outbox import enqueue_after_commit
from libs.queueops.queue_health import check_broker
from libs.web.db import get_session
from libs.web.errors import ApiError
from libs.web.validation import bad_request
from services.api.auth import current_business_id
from services.api.leads.schemas import (
    BulkLeads,
    BulkResult,
    CsvUpload,
    DncEntry,
    DncInput,
    DncPage,
    Lead,
    LeadFilter,
    LeadInput,
    LeadPage,
    LeadUpdate,
)
from services.api.schemas import Job, JobAccepted, Paging
from services.api.spec import answers, api, describe, error_message

blueprint = Blueprint("leads", __name__)

MAX_CSV_BYTES = 8 * 1024 * 1024


def _lead_or_404(lead_id: int) -> LeadRow:
    lead = get_session().scalar(
        select(LeadRow).where(LeadRow.id == lead_id, LeadRow.business_id == current_business_id())
    )
    if lead is None:
        raise ApiError(404, "not_found", f"no lead {lead_id}")
    return lead


def _phone_taken(phone: str) -> ApiError:
    get_session().rollback()
    return ApiError(409, "conflict", f"a lead with phone {phone} exists")


@blueprint.get("/leads")
@api.validate(resp=answers({200: LeadPage}))
def list_leads(query: LeadFilter) -> LeadPage:
    rows = select(LeadRow).where(LeadRow.business_id == current_business_id())
    if q := (query.q or "").strip():
        pattern = f"%{q}%"
        rows = rows.where(or_(LeadRow.name.ilike(pattern), LeadRow.phone_e164.like(pattern)))
    if query.source:
        rows = rows.where(LeadRow.source == query.source)
    if query.last_call_status:
        rows = rows.where(LeadRow.last_call_status == query.last_call_status)
    if query.callback_requested is not None:
        rows = rows.where(LeadRow.callback_requested.is_(query.callback_requested))
    session = get_session()
    total = session.scalar(select(func.count()).select_from(rows.subquery())) or 0
    page = session.scalars(rows.order_by(LeadRow.id).offset(query.offset).limit(query.per_page))
    items = [Lead.model_validate(row) for row in page]
    return LeadPage(items=items, page=query.page, per_page=query.per_page, total=total)


@blueprint.post("/leads")
@api.validate(resp=answers({201: Lead}, (409, "a lead with this phone exists")))
def create_lead(json: LeadInput) -> tuple[Lead, int]:
    session = get_session()
    lead = LeadRow(
        business_id=current_business_id(),
        phone_e164=json.phone,
        name=json.name or "",
        timezone=json.timezone,
        email=json.email,
        notes=json.notes,
        source="api",
    )
    session.add(lead)
    try:
        session.flush()
    except IntegrityError:
        raise _phone_taken(json.phone) from None
    emit(session, lead.business_id, "lead.created", lead_data(lead))
    session.commit()
    return Lead.model_validate(lead), 201


def _bulk_errors(req: Any, resp: Any, error: Exception | None, *_: Any) -> None:
    """All or nothing: every invalid lead is listed by its index, and nothing is saved."""
    if not isinstance(error, ValidationError):
        return
    by_index: dict[int, str] = {}
    for item in error.errors(include_url=False):
        location = item["loc"]
        if len(location) < 2 or location[0] != "leads" or not isinstance(location[1], int):
            raise bad_request(error_message(error))  # the list itself is wrong
        by_index.setdefault(location[1], describe({**item, "loc": location[2:]}))
    details = [{"index": i, "error": message} for i, message in sorted(by_index.items())]
    raise bad_request(f"{len(details)} invalid leads; nothing was saved", details=details[:100])


@blueprint.post("/leads/bulk")
@api.validate(resp=answers({200: BulkResult}), before=_bulk_errors)
def bulk_create(json: BulkLeads) -> BulkResult:
    inputs = [
        Upsert(
            phone_e164=lead.phone,
            name=lead.name or "",
            timezone=lead.timezone,
            email=lead.email,
            notes=lead.notes,
        )
        for lead in json.leads
    ]
    session = get_session()
    created, updated = upsert_leads(session, current_business_id(), inputs, source="api")
    session.commit()
    return BulkResult(created=created, updated=updated)


@blueprint.post("/leads/import")
@api.validate(form=CsvUpload, resp=answers({202: JobAccepted}, 413, 503))
def import_csv() -> tuple[JobAccepted, int]:
    """Import a CSV (multipart field 'file' or a text/csv body) in the background."""
    settings: Settings = current_app.config["SETTINGS"]
    upload = request.files.get("file")
    if upload is not None:
        content, filename = upload.read(MAX_CSV_BYTES + 1), upload.filename or ""
    elif request.mimetype in ("text/csv", "application/csv", "text/plain"):
        content, filename = request.get_data()[: MAX_CSV_BYTES + 1], ""
    else:
        raise bad_request("send the CSV as multipart field 'file' or as a text/csv body")
    if not content:
        raise bad_request("the CSV file is empty")
    if len(content) > MAX_CSV_BYTES:
        raise ApiError(413, "payload_too_large", f"CSV files are limited to {MAX_CSV_BYTES} bytes")
    check_broker(settings.queue_broker_url, settings.broker_check_timeout_s)
    session = get_session()
    job = BackgroundJob(business_id=current_business_id(), kind="leads.import_csv")
    session.add(job)
    session.flush()
    session.add(
        Upload(
            business_id=job.business_id,
            background_job_id=job.id,
            filename=filename[:255],
            content=content,
        )
    )
    enqueue_after_commit(session, LEADS_IMPORT_CSV.message(background_job_id=job.id))
    session.commit()
    return JobAccepted(job=Job.of(job)), 202


@blueprint.get("/leads/<int:lead_id>")
@api.validate(resp=answers({200: Lead}, 404))
def get_lead(lead_id: int) -> Lead:
    return Lead.model_validate(_lead_or_404(lead_id))


@blueprint.patch("/leads/<int:lead_id>")
@api.validate(resp=answers({200: Lead}, 404, (409, "another lead has this phone")))
def update_lead(lead_id: int, json: LeadUpdate) -> Lead:
    lead = _lead_or_404(lead_id)
    given = json.model_fields_set
    if json.phone is not None:
        lead.phone_e164 = json.phone
    if json.callback_requested is not None:
        lead.callback_requested = json.callback_requested
    if "name" in given:
        lead.name = json.name or ""
    # null clears these.
    for name in ("timezone", "email", "notes"):
        if name in given:
            setattr(lead, name, getattr(json, name))
    try:
        get_session().commit()
    except IntegrityError:
        raise _phone_taken(lead.phone_e164) from None
    return Lead.model_validate(lead)


@blueprint.delete("/leads/<int:lead_id>")
@api.validate(resp=answers({204: "deleted"}, 404))
def delete_lead(lead_id: int) -> Response:
    session = get_session()
    session.delete(_lead_or_404(lead_id))
    session.commit()
    return Response(status=204)


@blueprint.get("/dnc")
@api.validate(resp=answers({200: DncPage}))
def list_dnc(query: Paging) -> DncPage:
    rows = select(DncRow).where(DncRow.business_id == current_business_id())
    session = get_session()
    total = session.scalar(select(func.count()).select_from(rows.subquery())) or 0
    page = session.scalars(rows.order_by(DncRow.id).offset(query.offset).limit(query.per_page))
    items = [DncEntry.model_validate(row) for row in page]
    return DncPage(items=items, page=query.page, per_page=query.per_page, total=total)


@blueprint.post("/dnc")
@api.validate(resp=answers({200: (DncEntry, "already listed"), 201: (DncEntry, "added")}))
def add_dnc(json: DncInput) -> tuple[DncEntry, int]:
    """Add a number to the do-not-call list (never dialed again)."""
    session = get_session()
    business_id = current_business_id()
    existing = session.scalar(
        select(DncRow).where(DncRow.business_id == business_id, DncRow.phone_e164 == json.phone)
    )
    if existing is not None:
        return DncEntry.model_validate(existing), 200
    entry = DncRow(business_id=business_id, phone_e164=json.phone, reason=json.reason)
    session.add(entry)
    session.commit()
    return DncEntry.model_validate(entry), 201


@blueprint.delete("/dnc/<int:entry_id>")
@api.validate(resp=answers({204: "removed"}, 404))
def remove_dnc(entry_id: int) -> Response:
    session = get_session()
    entry = session.scalar(
        select(DncRow).where(DncRow.id == entry_id, DncRow.business_id == current_business_id())
    )
    if entry is None:
        raise ApiError(404, "not_found", f"no do-not-call entry {entry_id}")
    session.delete(entry)
    session.commit()
    return Response(status=204)
