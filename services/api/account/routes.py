"""Who am I: the caller's role and business."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from libs.common.models import Business
from libs.common.web.db import get_session
from services.api.auth import current_principal

blueprint = Blueprint("account", __name__)


@blueprint.get("/me")
def me() -> Response:
    principal = current_principal()
    business = None
    if principal.business_id is not None:
        row = get_session().get(Business, principal.business_id)
        if row is not None:
            business = {
                "id": row.id,
                "name": row.name,
                "timezone": row.timezone,
                "max_concurrent_calls": row.max_concurrent_calls,
            }
    return jsonify(
        {"role": principal.role.value, "token_id": principal.token_id, "business": business}
    )
