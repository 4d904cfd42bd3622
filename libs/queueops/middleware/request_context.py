"""Carries the request id of the HTTP request that caused a message into the worker's logs."""

from __future__ import annotations

from typing import Any

from dramatiq.middleware import Middleware

from libs.common.request_context import set_request_id


class RequestContextMiddleware(Middleware):
    def before_process_message(self, broker: Any, message: Any) -> None:
        set_request_id(message.options.get("request_id") or f"msg-{message.message_id}")

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        set_request_id(None)

    after_skip_message = after_process_message
