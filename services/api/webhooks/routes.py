"""Event webhooks: the catalogue, a business's endpoints, their delivery log and redelivery."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import func, select

from libs.common.crypto import SecretBox, secret_box
from libs.common.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    utcnow,
)
from libs.common.queue_health import check_broker
from libs.common.settings import Settings
from libs.common.web.db import get_session
from libs.common.web.errors import ApiError
from libs.common.web.validation import (
    bad_request,
    bounded_text,
    json_object,
    optional_int,
    optional_json_object,
    pagination,
    query_choice,
)
from libs.common.webhooks import catalogue, endpoints, ssrf
from services.api.auth import current_business_id

blueprint = Blueprint("webhooks", __name__)

FIELDS = {"url", "description", "event_types", "enabled"}


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def endpoint_dict(endpoint: WebhookEndpoint, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": endpoint.event_types,
        "enabled": endpoint.enabled,
        "disabled_at": _iso(endpoint.disabled_at),
        "disabled_reason": endpoint.disabled_reason,
        "failing_since": _iso(endpoint.failing_since),
        "last_success_at": _iso(endpoint.last_success_at),
        "previous_secret_expires_at": _iso(endpoint.previous_secret_expires_at),
        "deliveries": {s.value: counts.get(s.value, 0) for s in DeliveryStatus},
        "created_at": endpoint.created_at.isoformat(),
        "updated_at": endpoint.updated_at.isoformat(),
    }


def attempt_dict(attempt: WebhookAttempt) -> dict[str, Any]:
    return {
        "number": attempt.number,
        "outcome": attempt.outcome,
        "started_at": attempt.started_at.isoformat(),
        "finished_at": _iso(attempt.finished_at),
        "http_status": attempt.http_status,
        "latency_ms": attempt.latency_ms,
        "response_snippet": attempt.response_snippet,
        "error": attempt.error,
    }


def delivery_dict(
    delivery: WebhookDelivery, event_id: str, last: WebhookAttempt | None
) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "endpoint_id": delivery.endpoint_id,
        "event_id": event_id,
        "event_type": delivery.event_type,
        "status": delivery.status,
        "attempts": delivery.attempt_count,
        "next_attempt_at": _iso(delivery.next_attempt_at),
        "succeeded_at": _iso(delivery.succeeded_at),
        "created_at": delivery.created_at.isoformat(),
        "last_attempt": attempt_dict(last) if last is not None else None,
    }


def _settings() -> Settings:
    settings: Settings = current_app.config["SETTINGS"]
    return settings


def _box() -> SecretBox:
    box: SecretBox | None = current_app.extensions.get("secret_box")
    if box is None:
        box = current_app.extensions["secret_box"] = secret_box(_settings())
    return box


def _endpoint_or_404(endpoint_id: int, lock: bool = False) -> WebhookEndpoint:
    query = select(WebhookEndpoint).where(
        WebhookEndpoint.id == endpoint_id, WebhookEndpoint.business_id == current_business_id()
    )
    endpoint = get_session().scalar(query.with_for_update() if lock else query)
    if endpoint is None:
        raise ApiError(404, "not_found", f"no webhook endpoint {endpoint_id}")
    return endpoint


def _delivery_or_404(delivery_id: int, lock: bool = False) -> tuple[WebhookDelivery, str]:
    query = (
        select(WebhookDelivery, WebhookEvent.public_id)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.business_id == current_business_id(),
        )
    )
    if lock:  # the worker records an attempt's answer under the same lock
        query = query.with_for_update(of=WebhookDelivery)
    row = get_session().execute(query).one_or_none()
    if row is None:
        raise ApiError(404, "not_found", f"no webhook delivery {delivery_id}")
    return row[0], row[1]


def _counts(endpoint_ids: list[int]) -> dict[int, dict[str, int]]:
    counts: dict[int, dict[str, int]] = {i: {} for i in endpoint_ids}
    if endpoint_ids:
        for endpoint_id, status, n in get_session().execute(
            select(WebhookDelivery.endpoint_id, WebhookDelivery.status, func.count())
            .where(WebhookDelivery.endpoint_id.in_(endpoint_ids))
            .group_by(WebhookDelivery.endpoint_id, WebhookDelivery.status)
        ):
            counts[endpoint_id][status] = int(n)
    return counts


def _show(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return endpoint_dict(endpoint, _counts([endpoint.id])[endpoint.id])


def _url(value: Any) -> str:
    try:
        return ssrf.check_registration(value, allow_private=_settings().webhooks_allow_private)
    except ssrf.UrlRefused as exc:
        raise ApiError(400, "url_not_allowed", f"url: {exc}") from None


def _event_types(value: Any) -> list[str]:
    try:
        return endpoints.event_types(value)
    except endpoints.EndpointError as exc:
        raise bad_request(str(exc)) from None


def _enabled(value: Any) -> bool:
    if not isinstance(value, bool):
        raise bad_request("enabled must be true or false")
    return value


def _check_fields(body: dict[str, Any]) -> None:
    unknown = set(body) - FIELDS
    if unknown:
        raise bad_request(f"unknown fields: {', '.join(sorted(unknown))[:200]}")


def _refused(exc: endpoints.EndpointError) -> ApiError:
    status = 400 if exc.code == "bad_request" else 409
    return ApiError(status, exc.code, str(exc))


@blueprint.get("/webhooks/event-types")
def event_types() -> Response:
    return jsonify(
        {
            "items": [
                {"name": t.name, "description": t.description,
                 "schema": catalogue.envelope_schema(t)}
                for t in catalogue.EVENT_TYPES.values()
            ]
        }
    )  # fmt: skip


@blueprint.get("/webhooks/endpoints")
def list_endpoints() -> Response:
    rows = (
        get_session()
        .scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.business_id == current_business_id())
            .order_by(WebhookEndpoint.id)
        )
        .all()
    )
    counts = _counts([e.id for e in rows])
    return jsonify({"items": [endpoint_dict(e, counts[e.id]) for e in rows]})


@blueprint.post("/webhooks/endpoints")
def create_endpoint() -> tuple[Response, int]:
    body = json_object()
    _check_fields(body)
    if "url" not in body or "event_types" not in body:
        raise bad_request("url and event_types are required")
    url = _url(body["url"])
    types = _event_types(body["event_types"])
    description = bounded_text(body.get("description", ""), "description",
                               endpoints.MAX_DESCRIPTION)  # fmt: skip
    enabled = _enabled(body.get("enabled", True))
    session = get_session()
    try:
        endpoint, secret = endpoints.create(
            session, _box(), current_business_id(), url, types, description, enabled
        )
    except endpoints.EndpointError as exc:
        raise _refused(exc) from None
    session.commit()
    # The secret is shown this once; it is stored only encrypted.
    return jsonify({**_show(endpoint), "secret": secret}), 201


@blueprint.get("/webhooks/endpoints/<int:endpoint_id>")
def get_endpoint(endpoint_id: int) -> Response:
    return jsonify(_show(_endpoint_or_404(endpoint_id)))


@blueprint.patch("/webhooks/endpoints/<int:endpoint_id>")
def update_endpoint(endpoint_id: int) -> Response:
    body = json_object()
    _check_fields(body)
    endpoint = _endpoint_or_404(endpoint_id, lock=True)
    if "url" in body:
        endpoint.url = _url(body["url"])
    if "event_types" in body:
        endpoint.event_types = _event_types(body["event_types"])
    if "description" in body:
        endpoint.description = bounded_text(body["description"], "description",
                                            endpoints.MAX_DESCRIPTION)  # fmt: skip
    if "enabled" in body:
        endpoints.set_enabled(get_session(), endpoint, _enabled(body["enabled"]))
    get_session().commit()
    return jsonify(_show(endpoint))


@blueprint.delete("/webhooks/endpoints/<int:endpoint_id>")
def delete_endpoint(endpoint_id: int) -> Response:
    session = get_session()
    session.delete(_endpoint_or_404(endpoint_id))
    session.commit()
    return Response(status=204)


@blueprint.post("/webhooks/endpoints/<int:endpoint_id>/rotate-secret")
def rotate_secret(endpoint_id: int) -> Response:
    body = optional_json_object()
    if set(body) - {"grace_s"}:
        raise bad_request("the only field is grace_s")
    grace_s = optional_int(body, "grace_s", endpoints.DEFAULT_SECRET_GRACE_S, 0,
                           endpoints.MAX_SECRET_GRACE_S)  # fmt: skip
    endpoint = _endpoint_or_404(endpoint_id, lock=True)
    secret = endpoints.rotate_secret(endpoint, _box(), utcnow(), grace_s)
    get_session().commit()
    return jsonify({**_show(endpoint), "secret": secret})


@blueprint.get("/webhooks/endpoints/<int:endpoint_id>/deliveries")
def list_deliveries(endpoint_id: int) -> Response:
    endpoint = _endpoint_or_404(endpoint_id)
    page, per_page = pagination()
    where = [WebhookDelivery.endpoint_id == endpoint.id]
    if status := query_choice("status", {s.value for s in DeliveryStatus}):
        where.append(WebhookDelivery.status == status)
    if event_type := query_choice("event_type", set(catalogue.EVENT_TYPES)):
        where.append(WebhookDelivery.event_type == event_type)
    session = get_session()
    total = session.scalar(select(func.count()).select_from(WebhookDelivery).where(*where)) or 0
    rows = session.execute(
        select(WebhookDelivery, WebhookEvent.public_id)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .where(*where)
        .order_by(WebhookDelivery.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    last = _last_attempts([d.id for d, _ in rows])
    items = [delivery_dict(d, event_id, last.get(d.id)) for d, event_id in rows]
    return jsonify({"items": items, "page": page, "per_page": per_page, "total": total})


def _last_attempts(delivery_ids: list[int]) -> dict[int, WebhookAttempt]:
    if not delivery_ids:
        return {}
    newest = (
        select(WebhookAttempt.delivery_id, func.max(WebhookAttempt.number).label("number"))
        .where(WebhookAttempt.delivery_id.in_(delivery_ids))
        .group_by(WebhookAttempt.delivery_id)
        .subquery()
    )
    attempts = get_session().scalars(
        select(WebhookAttempt).join(
            newest,
            (WebhookAttempt.delivery_id == newest.c.delivery_id)
            & (WebhookAttempt.number == newest.c.number),
        )
    )
    return {a.delivery_id: a for a in attempts}


@blueprint.post("/webhooks/endpoints/<int:endpoint_id>/redeliver-failed")
def redeliver_failed(endpoint_id: int) -> tuple[Response, int]:
    settings = _settings()
    check_broker(settings.redis_url, settings.broker_check_timeout_s)
    endpoint = _endpoint_or_404(endpoint_id, lock=True)
    session = get_session()
    schedule = len(settings.webhook_retry_schedule_s)
    try:
        count = endpoints.redeliver_failed(session, endpoint, utcnow(), schedule)
    except endpoints.EndpointError as exc:
        raise _refused(exc) from None
    session.commit()
    return jsonify({"redelivered": count}), 202


@blueprint.get("/webhooks/deliveries/<int:delivery_id>")
def get_delivery(delivery_id: int) -> Response:
    delivery, event_id = _delivery_or_404(delivery_id)
    session = get_session()
    attempts = session.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id == delivery.id)
        .order_by(WebhookAttempt.number)
    ).all()
    payload = session.scalar(select(WebhookEvent.payload).where(WebhookEvent.public_id == event_id))
    shown = delivery_dict(delivery, event_id, attempts[-1] if attempts else None)
    log = [attempt_dict(a) for a in attempts]
    return jsonify({**shown, "attempt_log": log, "payload": payload})


@blueprint.post("/webhooks/deliveries/<int:delivery_id>/redeliver")
def redeliver(delivery_id: int) -> tuple[Response, int]:
    settings = _settings()
    check_broker(settings.redis_url, settings.broker_check_timeout_s)
    delivery, event_id = _delivery_or_404(delivery_id, lock=True)
    endpoint = _endpoint_or_404(delivery.endpoint_id)
    session = get_session()
    schedule = len(settings.webhook_retry_schedule_s)
    try:
        endpoints.redeliver(session, endpoint, delivery, utcnow(), schedule)
    except endpoints.EndpointError as exc:
        raise _refused(exc) from None
    session.commit()
    last = _last_attempts([delivery.id]).get(delivery.id)
    return jsonify(delivery_dict(delivery, event_id, last)), 202
