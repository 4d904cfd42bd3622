"""The console for `switchboard run`: the SPA and /api/ on one local origin, as nginx serves
them in production, without needing nginx on a developer's machine.

It serves ``deploy/nginx/html`` with the same history fallback (``try_files $uri $uri/
/index.html``), passes ``/api/`` to the api service, keeps ``/metrics``, ``/healthz`` and
``/readyz`` private, and adds the security headers of ``deploy/nginx/snippets/`` (read from
that file, so the Content-Security-Policy the SPA must live with is the production one).
Development only: production runs the real nginx (docker-compose.prod.yml).

Run: ``python -m libs.common.dev_console --port 8080 --api http://127.0.0.1:5000``.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import re
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import click
import requests
from werkzeug.security import safe_join
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from libs.common.settings import ROOT

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

HTML_DIR = ROOT / "deploy" / "nginx" / "html"
SECURITY_HEADERS = ROOT / "deploy" / "nginx" / "snippets" / "security_headers.conf"
#: nginx's client_max_body_size.
MAX_BODY_BYTES = 10 * 1024 * 1024
#: Never forwarded either way (RFC 9110 §7.6.1), plus what the proxy itself rewrites.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "content-encoding",
}
PRIVATE_PATHS = {"/metrics", "/healthz", "/readyz"}

_HEADER_LINE = re.compile(r'^\s*add_header\s+([A-Za-z-]+)\s+"([^"]*)"\s+always;', re.MULTILINE)


def security_headers(path: Path = SECURITY_HEADERS) -> list[tuple[str, str]]:
    """The ``add_header NAME "VALUE" always;`` lines of the nginx snippet."""
    return _HEADER_LINE.findall(path.read_text()) if path.exists() else []


def _json_error(status: int, code: str, message: str) -> Response:
    # The API's error shape, so the SPA shows a proxy failure like any other error.
    body = {"error": {"code": code, "message": message}}
    return Response(json.dumps(body), status=status, mimetype="application/json")


class DevConsole:
    """A WSGI app: static SPA files with history fallback, and a reverse proxy for /api/."""

    def __init__(
        self,
        api_base: str,
        html_dir: Path = HTML_DIR,
        headers: Iterable[tuple[str, str]] | None = None,
        timeout_s: float = 60,
    ) -> None:
        self.api_base = api_base.rstrip("/")
        self.html_dir = html_dir
        self.headers = list(security_headers() if headers is None else headers)
        self.timeout_s = timeout_s
        self.http = requests.Session()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        if request.path.startswith("/api/"):
            response = self.proxy(request)
        elif request.path in PRIVATE_PATHS:
            response = _json_error(404, "not_found", "not served on the public side")
        else:
            response = self.static(request.path)
        for name, value in self.headers:
            response.headers[name] = value
        return response(environ, start_response)

    def static(self, path: str) -> Response:
        relative = path.lstrip("/")
        candidate = safe_join(str(self.html_dir), relative) if relative else None
        target = Path(candidate) if candidate else None
        if target is not None and target.is_dir():
            target = target / "index.html"
        if target is None or not target.is_file():
            target = self.html_dir / "index.html"  # history fallback: the SPA routes the path
        mimetype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        response = Response(target.read_bytes(), mimetype=mimetype)
        # Development: an edited file shows on the next reload.
        response.headers["Cache-Control"] = "no-cache"
        return response

    def proxy(self, request: Request) -> Response:
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return _json_error(413, "payload_too_large", "the request body is over 10 MB")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        # What nginx sends (deploy/nginx/snippets/proxy.conf): one trusted hop, a request id.
        headers.update(
            {
                "X-Forwarded-For": request.remote_addr or "",
                "X-Forwarded-Proto": request.scheme,
                "X-Forwarded-Host": request.host,
                "X-Forwarded-Port": str(request.environ.get("SERVER_PORT", "")),
                "X-Request-ID": uuid.uuid4().hex,
            }
        )
        url = f"{self.api_base}{request.full_path if request.query_string else request.path}"
        try:
            upstream = self.http.request(
                request.method,
                url,
                headers=headers,
                data=request.get_data(),
                allow_redirects=False,
                timeout=self.timeout_s,
            )
        except requests.RequestException as exc:
            reason = f"the api at {self.api_base} is not reachable ({type(exc).__name__})"
            return _json_error(502, "bad_gateway", reason)
        response = Response(upstream.content, status=upstream.status_code)
        for name, value in upstream.headers.items():
            if name.lower() not in HOP_BY_HOP:
                response.headers[name] = value
        return response


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--api", "api_base", required=True, help="The api service's base URL.")
def main(host: str, port: int, api_base: str) -> None:
    """Serve the console and proxy /api/ (development only)."""
    # One line per request would drown `switchboard run`'s output while pages poll every second.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server(host, port, DevConsole(api_base), threaded=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
