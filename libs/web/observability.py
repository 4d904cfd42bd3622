"""Request ids and request metrics for every Flask service."""

from __future__ import annotations

import time

from flask import Flask, Response, g, request

from libs.common import metrics
from libs.common.request_context import sanitize_request_id, set_request_id

REQUEST_ID_HEADER = "X-Request-ID"


def init_app(app: Flask, service: str) -> None:
    @app.before_request
    def _start() -> None:
        g.request_started = time.perf_counter()
        g.request_id = sanitize_request_id(request.headers.get(REQUEST_ID_HEADER))
        set_request_id(g.request_id)

    @app.after_request
    def _finish(response: Response) -> Response:
        # The route template, never the raw path: ids in paths would explode label cardinality.
        route = request.url_rule.rule if request.url_rule else "<unmatched>"
        elapsed = time.perf_counter() - g.get("request_started", time.perf_counter())
        metrics.HTTP_REQUESTS.labels(
            service, route, request.method, str(response.status_code)
        ).inc()
        metrics.HTTP_LATENCY.labels(service, route, request.method).observe(elapsed)
        if "request_id" in g:
            response.headers[REQUEST_ID_HEADER] = g.request_id
        return response

    @app.teardown_request
    def _clear(_exc: BaseException | None) -> None:
        set_request_id(None)
