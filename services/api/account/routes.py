"""Who am I: the caller's role and business."""

from __future__ import annotations

from flask import Blueprint

from libs.common.models import Business as BusinessRow
from libs.web.db import get_session
from services.api.account.schemas import Business, Me
from services.api.auth import current_principal
from services.api.spec import answers, api

blueprint = Blueprint("account", __name__)


@blueprint.get("/me")
@api.validate(resp=answers({200: Me}, auth="any"))
def me() -> Me:
    principal = current_principal()
    row = None
    if principal.business_id is not None:
        row = get_session().get(BusinessRow, principal.business_id)
    return Me(
        role=principal.role.value,
        token_id=principal.token_id,
        business=Business.model_validate(row) if row is not None else None,
    )
