"""Leads: create one, bulk, CSV import (a BackgroundJob), list, update, delete; the DNC list."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from libs.common.campaigns.leads import InvalidLead, parse_lead, upsert_leads
from libs.common.contracts import LEADS_IMPORT_CSV
from libs.common.models import BackgroundJob, DncEntry, Lead, Upload
from libs.common.outbox import enqueue_after_commit
from libs.common.queue_health import check_broker
from libs.common.settings import Settings
from libs.common.telephony.phones import InvalidPhone, to_e164
from libs.common.web.db import get_session
from libs.common.web.errors import ApiError
from libs.common.web.validation import (
    bad_request,
    bounded_text,
    json_object,
    pagination,
    query_choice,
)
from services.api.auth import current_business_id
from services.api.leads.serializers import dnc_dict, lead_dict

blueprint = Blueprint("leads", __name__)

MAX_BULK = 5000
MAX_CSV_BYTES = 8 * 1024 * 1024
MAX_DNC_REASON = 200


def _lead_or_404(lead_id: int) -> Lead:
    lead = get_session().scalar(
        select(Lead).where(Lead.id == lead_id, Lead.business_id == current_business_id())
    )
    if lead is None:
        raise ApiError(404, "not_found", f"no lead {lead_id}")
    return lead


@blueprint.get("/leads")
def list_leads() -> Response:
    page, per_page = pagination()
    query = select(Lead).where(Lead.business_id == current_business_id())
    if q := (request.args.get("q") or "").strip()[:100]:
        pattern = f"%{q}%"
        query = query.where(or_(Lead.name.ilike(pattern), Lead.phone_e164.like(pattern)))
    if source := query_choice("source", {"api", "csv", "call"}):
        query = query.where(Lead.source == source)
    if status := request.args.get("last_call_status"):
        query = query.where(Lead.last_call_status == status[:16])
    if flag := query_choice("callback_requested", {"true", "false"}):
        query = query.where(Lead.callback_requested.is_(flag == "true"))
    session = get_session()
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Lead.id).offset((page - 1) * per_page).limit(per_page))
    return jsonify(
        {"items": [lead_dict(r) for r in rows], "page": page, "per_page": per_page, "total": total}
    )


@blueprint.post("/leads")
def create_lead() -> tuple[Response, int]:
    try:
        data = parse_lead(json_object())
    except InvalidLead as exc:
        raise bad_request(str(exc)) from None
    session = get_session()
    lead = Lead(
        business_id=current_business_id(),
        phone_e164=data.phone_e164,
        name=data.name,
        timezone=data.timezone,
        email=data.email,
        notes=data.notes,
        source="api",
    )
    session.add(lead)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise ApiError(409, "conflict", f"a lead with phone {data.phone_e164} exists") from None
    return jsonify(lead_dict(lead)), 201


@blueprint.post("/leads/bulk")
def bulk_create() -> Response:
    body = json_object()
    raw = body.get("leads")
    if not isinstance(raw, list) or not raw:
        raise bad_request("leads must be a non-empty array")
    if len(raw) > MAX_BULK:
        raise bad_request(f"at most {MAX_BULK} leads per request; use the CSV import for more")
    inputs, errors = [], []
    for index, item in enumerate(raw):
        try:
            inputs.append(parse_lead(item))
        except InvalidLead as exc:
            errors.append({"index": index, "error": str(exc)})
    if errors:
        # All or nothing: a partly applied list is hard to fix from the client.
        raise bad_request(f"{len(errors)} invalid leads; nothing was saved", details=errors[:100])
    session = get_session()
    created, updated = upsert_leads(session, current_business_id(), inputs, source="api")
    session.commit()
    return jsonify({"created": created, "updated": updated})


@blueprint.post("/leads/import")
def import_csv() -> tuple[Response, int]:
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
    return jsonify({"job": job.to_dict()}), 202


@blueprint.get("/leads/<int:lead_id>")
def get_lead(lead_id: int) -> Response:
    return jsonify(lead_dict(_lead_or_404(lead_id)))


@blueprint.patch("/leads/<int:lead_id>")
def update_lead(lead_id: int) -> Response:
    lead = _lead_or_404(lead_id)
    body = json_object()
    unknown = set(body) - {"name", "phone", "timezone", "email", "notes", "callback_requested"}
    if unknown:
        raise bad_request(f"unknown fields: {', '.join(sorted(unknown))}")
    merged: dict[str, Any] = {
        "phone": body.get("phone", lead.phone_e164),
        "name": body.get("name", lead.name),
        "timezone": body.get("timezone", lead.timezone),
        "email": body.get("email", lead.email),
        "notes": body.get("notes", lead.notes),
    }
    try:
        data = parse_lead(merged)
    except InvalidLead as exc:
        raise bad_request(str(exc)) from None
    if "callback_requested" in body:
        if not isinstance(body["callback_requested"], bool):
            raise bad_request("callback_requested must be true or false")
        lead.callback_requested = body["callback_requested"]
    lead.phone_e164, lead.name, lead.timezone = data.phone_e164, data.name, data.timezone
    lead.email, lead.notes = data.email, data.notes
    session = get_session()
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise ApiError(409, "conflict", f"a lead with phone {data.phone_e164} exists") from None
    return jsonify(lead_dict(lead))


@blueprint.delete("/leads/<int:lead_id>")
def delete_lead(lead_id: int) -> Response:
    session = get_session()
    session.delete(_lead_or_404(lead_id))
    session.commit()
    return Response(status=204)


@blueprint.get("/dnc")
def list_dnc() -> Response:
    page, per_page = pagination()
    query = select(DncEntry).where(DncEntry.business_id == current_business_id())
    session = get_session()
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(DncEntry.id).offset((page - 1) * per_page).limit(per_page)
    )
    return jsonify(
        {"items": [dnc_dict(r) for r in rows], "page": page, "per_page": per_page, "total": total}
    )


@blueprint.post("/dnc")
def add_dnc() -> tuple[Response, int]:
    body = json_object()
    try:
        phone = to_e164(body.get("phone"))
    except InvalidPhone as exc:
        raise bad_request(f"phone: {exc}") from None
    reason = bounded_text(body.get("reason", ""), "reason", MAX_DNC_REASON)
    session = get_session()
    existing = session.scalar(
        select(DncEntry).where(
            DncEntry.business_id == current_business_id(), DncEntry.phone_e164 == phone
        )
    )
    if existing is not None:
        return jsonify(dnc_dict(existing)), 200
    entry = DncEntry(business_id=current_business_id(), phone_e164=phone, reason=reason)
    session.add(entry)
    session.commit()
    return jsonify(dnc_dict(entry)), 201


@blueprint.delete("/dnc/<int:entry_id>")
def remove_dnc(entry_id: int) -> Response:
    session = get_session()
    entry = session.scalar(
        select(DncEntry).where(
            DncEntry.id == entry_id, DncEntry.business_id == current_business_id()
        )
    )
    if entry is None:
        raise ApiError(404, "not_found", f"no do-not-call entry {entry_id}")
    session.delete(entry)
    session.commit()
    return Response(status=204)
