"""Every Twilio-facing route checks X-Twilio-Signature against the configured public URL."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, request

from libs.common import metrics
from libs.common.settings import Settings
from libs.telephony import twilio_signature
from libs.web.errors import ApiError

logger = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


def twilio_signed(view: F) -> F:
    """403 unless the request carries Twilio's signature of the public URL and parameters."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        settings: Settings = current_app.config["SETTINGS"]
        if not settings.twilio_auth_token:
            raise ApiError(403, "forbidden", "TWILIO_AUTH_TOKEN is not configured")
        url = twilio_signature.public_url(
            settings.public_base_url, request.path, request.query_string.decode("latin-1")
        )
        params = request.form.to_dict(flat=True)
        signature = request.headers.get("X-Twilio-Signature")
        if not twilio_signature.is_valid(settings.twilio_auth_token, url, params, signature):
            route = request.url_rule.rule if request.url_rule else request.path
            metrics.WEBHOOK_SIGNATURE_FAILURES.labels(route).inc()
            logger.warning("refused %s: %s X-Twilio-Signature", route,
                           "wrong" if signature else "missing")  # fmt: skip
            raise ApiError(403, "invalid_signature", "missing or invalid X-Twilio-Signature")
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
