"""The `switchboard run` console: the SPA's files as nginx serves them, /api/ passed on."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, jsonify, request
from werkzeug.serving import make_server
from werkzeug.test import Client

from devtools.dev_console import HTML_DIR, MAX_BODY_BYTES, DevConsole, security_headers
from tests.support.services import free_port


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    """A stand-in api that answers with what it received."""
    app = Flask("upstream")

    @app.route("/api/<path:rest>", methods=["GET", "POST", "DELETE"])
    def echo(rest: str) -> Any:
        response = jsonify(
            {
                "method": request.method,
                "path": request.full_path,
                "body": request.get_data(as_text=True),
                "headers": dict(request.headers),
            }
        )
        response.status_code = 418 if rest == "teapot" else 200
        response.headers["X-Upstream"] = "yes"
        return response

    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()


def test_the_security_headers_are_nginx_s() -> None:
    headers = dict(security_headers())
    assert headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert headers["X-Frame-Options"] == "DENY"
    assert len(headers) == 5


def test_files_with_history_fallback_and_no_way_out() -> None:
    client = Client(DevConsole("http://127.0.0.1:9"))
    index = client.get("/")
    assert index.status_code == 200 and "<h1>Switchboard</h1>" in index.text
    assert index.headers["Content-Security-Policy"].startswith("default-src 'self'")
    module = client.get("/app/main.js")
    assert module.mimetype == "text/javascript"  # module scripts are refused otherwise
    assert module.text == (HTML_DIR / "app" / "main.js").read_text()
    assert client.get("/runs/12/calls").text == index.text
    # Above the root: a 400, as nginx answers (tests/deploy/test_edge.py compares the two).
    for escape in ("/../../etc/passwd", "/app/../../../libs/common/settings.py"):
        refused = client.get(escape)
        assert refused.status_code == 400 and refused.json["error"]["code"] == "bad_request"
    assert client.get("/app/../runs/12").text == index.text
    for private in ("/metrics", "/healthz", "/readyz"):
        assert client.get(private).status_code == 404, private


def test_api_requests_are_passed_on_as_nginx_does(upstream: str) -> None:
    client = Client(DevConsole(upstream))
    response = client.post(
        "/api/leads?page=2",
        data="a,b\n1,2\n",
        headers={"Authorization": "Bearer sb_test", "Content-Type": "text/csv"},
    )
    assert response.status_code == 200 and response.headers["X-Upstream"] == "yes"
    seen = response.json
    assert seen["method"] == "POST" and seen["path"] == "/api/leads?page=2"
    assert seen["body"] == "a,b\n1,2\n"
    assert seen["headers"]["Authorization"] == "Bearer sb_test"
    assert seen["headers"]["X-Forwarded-Proto"] == "http"
    assert seen["headers"]["X-Request-Id"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert client.get("/api/teapot").status_code == 418  # answers are passed back as they are
    # The path is normalised before it is routed and forwarded, as nginx does.
    assert client.get("/api/x/%2e%2e/leads").json["path"] == "/api/leads?"


def test_an_unreachable_api_or_a_huge_body_is_a_json_error() -> None:
    client = Client(DevConsole(f"http://127.0.0.1:{free_port()}"))
    down = client.get("/api/me")
    assert down.status_code == 502 and down.json["error"]["code"] == "bad_gateway"
    huge = client.post("/api/leads/import", data=b"x" * (MAX_BODY_BYTES + 1))
    assert huge.status_code == 413 and huge.json["error"]["code"] == "request_entity_too_large"
