"""Event webhooks: the catalogue, a business's endpoints, their delivery log and redelivery."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app
from sqlalchemy import func, select

from libs.common.crypto import SecretBox, secret_box
from libs.common.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    utcnow,
)
from libs.common.settings import Settings
from libs.events import catalogue, endpoints, ssrf
from libs.queueops.queue_health import check_broker
from libs.web.db import get_session
from libs.web.errors import ApiError
from services.api.auth import current_business_id
from services.api.spec import answers, api
from services.api.webhooks.schemas import (
    Attempt,
    Delivery,
    DeliveryCounts,
    DeliveryDetail,
    DeliveryFilter,
    DeliveryPage,
    Endpoint,
    EndpointInput,
    EndpointList,
    EndpointUpdate,
    EndpointWithSecret,
    EventType,
    EventTypeList,
    Redelivered,
    RotateInput,
)

blueprint = Blueprint("webhooks", __name__)

_DISABLED = (409, "the endpoint is disabled (code endpoint_disabled); enable it first")
_TOO_MANY = (409, f"the business has {endpoints.MAX_ENDPOINTS} endpoints already")
_URL_REFUSED = (
    400,
    "invalid input (bad_request), or a URL deliveries may not reach (url_not_allowed: private, "
    "loopback, link-local… in production)",
)


#: Endpoint's fields read from the row (the counts come from the deliveries).
_ROW_FIELDS = [name for name in Endpoint.model_fields if name != "deliveries"]


def _endpoint(row: WebhookEndpoint, counts: dict[str, int], secret: str | None = None) -> Any:
    fields = {name: getattr(row, name) for name in _ROW_FIELDS}
    deliveries = DeliveryCounts(**counts)
    if secret is None:
        return Endpoint(**fields, deliveries=deliveries)
    return EndpointWithSecret(**fields, deliveries=deliveries, secret=secret)


def _delivery(row: WebhookDelivery, event_id: str, last: WebhookAttempt | None) -> Delivery:
    return Delivery(
        id=row.id, endpoint_id=row.endpoint_id, event_id=event_id, event_type=row.event_type,
        status=row.status,  # type: ignore[arg-type]  # the column holds a DeliveryStatus
        attempts=row.attempt_count, next_attempt_at=row.next_attempt_at,
        succeeded_at=row.succeeded_at, created_at=row.created_at,
        last_attempt=Attempt.model_validate(last) if last is not None else None,
    )  # fmt: skip


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


def _show(endpoint: WebhookEndpoint, secret: str | None = None) -> Any:
    return _endpoint(endpoint, _counts([endpoint.id])[endpoint.id], secret)


def _url(value: str) -> str:
    try:
        return ssrf.check_registration(value, allow_private=_settings().webhooks_allow_private)
    except ssrf.UrlRefused as exc:
        raise ApiError(400, "url_not_allowed", f"url: {exc}") from None


def _refused(exc: endpoints.EndpointError) -> ApiError:
    status = 400 if exc.code == "bad_request" else 409
    return ApiError(status, exc.code, str(exc))


@blueprint.get("/webhooks/event-types")
@api.validate(resp=answers({200: EventTypeList}))
def event_types() -> EventTypeList:
    """The event catalogue, with each body's JSON Schema."""
    kinds = catalogue.EVENT_TYPES.values()
    return EventTypeList(items=[
        EventType(name=k.name, description=k.description, schema=catalogue.envelope_schema(k))
        for k in kinds
    ])  # fmt: skip


@blueprint.get("/webhooks/endpoints")
@api.validate(resp=answers({200: EndpointList}))
def list_endpoints() -> EndpointList:
    """The business's webhook endpoints."""
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
    return EndpointList(items=[_endpoint(e, counts[e.id]) for e in rows])


@blueprint.post("/webhooks/endpoints")
@api.validate(resp=answers({201: EndpointWithSecret}, _URL_REFUSED, _TOO_MANY))
def create_endpoint(json: EndpointInput) -> tuple[EndpointWithSecret, int]:
    """Register an endpoint; the answer holds its signing secret, shown this once."""
    business_id = current_business_id()  # an operator token is a 403 before the URL is judged
    url = _url(json.url)
    types = endpoints.event_types(list(json.event_types))
    session = get_session()
    try:
        endpoint, secret = endpoints.create(
            session, _box(), business_id, url, types, json.description, json.enabled
        )
    except endpoints.EndpointError as exc:
        raise _refused(exc) from None
    session.commit()
    # Stored only encrypted; this answer is the only place the secret appears.
    return _show(endpoint, secret), 201


@blueprint.get("/webhooks/endpoints/<int:endpoint_id>")
@api.validate(resp=answers({200: Endpoint}, 404))
def get_endpoint(endpoint_id: int) -> Endpoint:
    """One endpoint."""
    shown: Endpoint = _show(_endpoint_or_404(endpoint_id))
    return shown


@blueprint.patch("/webhooks/endpoints/<int:endpoint_id>")
@api.validate(resp=answers({200: Endpoint}, _URL_REFUSED, 404))
def update_endpoint(endpoint_id: int, json: EndpointUpdate) -> Endpoint:
    """Change the URL, event types or description; enable or disable (disabling fails what
    was pending for it, enabling clears the failures)."""
    endpoint = _endpoint_or_404(endpoint_id, lock=True)
    if json.url is not None:
        endpoint.url = _url(json.url)
    if json.event_types is not None:
        endpoint.event_types = endpoints.event_types(list(json.event_types))
    if json.description is not None:
        endpoint.description = json.description
    if json.enabled is not None:
        endpoints.set_enabled(get_session(), endpoint, json.enabled)
    get_session().commit()
    shown: Endpoint = _show(endpoint)
    return shown


@blueprint.delete("/webhooks/endpoints/<int:endpoint_id>")
@api.validate(resp=answers({204: "deleted"}, 404))
def delete_endpoint(endpoint_id: int) -> Response:
    """Delete an endpoint with its delivery log."""
    session = get_session()
    session.delete(_endpoint_or_404(endpoint_id))
    session.commit()
    return Response(status=204)


@blueprint.post("/webhooks/endpoints/<int:endpoint_id>/rotate-secret")
@api.validate(resp=answers({200: EndpointWithSecret}, 404))
def rotate_secret(endpoint_id: int, json: RotateInput) -> EndpointWithSecret:
    """A new signing secret (shown once); the old one keeps signing beside it for grace_s."""
    endpoint = _endpoint_or_404(endpoint_id, lock=True)
    secret = endpoints.rotate_secret(endpoint, _box(), utcnow(), json.grace_s)
    get_session().commit()
    shown: EndpointWithSecret = _show(endpoint, secret)
    return shown


@blueprint.get("/webhooks/endpoints/<int:endpoint_id>/deliveries")
@api.validate(resp=answers({200: (DeliveryPage, "newest first")}, 404))
def list_deliveries(endpoint_id: int, query: DeliveryFilter) -> DeliveryPage:
    """The endpoint's delivery log, each delivery with its last attempt."""
    endpoint = _endpoint_or_404(endpoint_id)
    where = [WebhookDelivery.endpoint_id == endpoint.id]
    if query.status:
        where.append(WebhookDelivery.status == query.status)
    if query.event_type:
        where.append(WebhookDelivery.event_type == query.event_type)
    session = get_session()
    total = session.scalar(select(func.count()).select_from(WebhookDelivery).where(*where)) or 0
    rows = session.execute(
        select(WebhookDelivery, WebhookEvent.public_id)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .where(*where)
        .order_by(WebhookDelivery.id.desc())
        .offset(query.offset)
        .limit(query.per_page)
    ).all()
    last = _last_attempts([d.id for d, _ in rows])
    items = [_delivery(d, event_id, last.get(d.id)) for d, event_id in rows]
    return DeliveryPage(items=items, page=query.page, per_page=query.per_page, total=total)


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
@api.validate(resp=answers({202: Redelivered}, 404, _DISABLED, 503))
def redeliver_failed(endpoint_id: int) -> tuple[Redelivered, int]:
    """Send every failed delivery of the endpoint again, once each."""
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
    return Redelivered(redelivered=count), 202


@blueprint.get("/webhooks/deliveries/<int:delivery_id>")
@api.validate(resp=answers({200: DeliveryDetail}, 404))
def get_delivery(delivery_id: int) -> DeliveryDetail:
    """One delivery with every attempt and the body sent."""
    delivery, event_id = _delivery_or_404(delivery_id)
    session = get_session()
    attempts = session.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id == delivery.id)
        .order_by(WebhookAttempt.number)
    ).all()
    payload = session.scalar(select(WebhookEvent.payload).where(WebhookEvent.public_id == event_id))
    shown = _delivery(delivery, event_id, attempts[-1] if attempts else None)
    log = [Attempt.model_validate(a) for a in attempts]
    return DeliveryDetail(**shown.model_dump(), attempt_log=log, payload=payload or {})


@blueprint.post("/webhooks/deliveries/<int:delivery_id>/redeliver")
@api.validate(resp=answers({202: Delivery}, 404, _DISABLED, 503))
def redeliver(delivery_id: int) -> tuple[Delivery, int]:
    """Send the event again now, once (a pending delivery: now instead of at its retry)."""
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
    return _delivery(delivery, event_id, last), 202
