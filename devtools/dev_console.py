"""The console for `switchboard run`: the SPA and /api/ on one local origin, as nginx serves
them in production, without needing nginx on a developer's machine.

It serves ``deploy/nginx/html`` with the same history fallback (``try_files $uri $uri/
/index.html``), passes ``/api/`` to the api service, keeps ``/metrics``, ``/healthz`` and
``/readyz`` private, and adds the security headers of ``deploy/nginx/snippets/`` (read from
that file, so the Content-Security-Policy the SPA must live with is the production one).
Like nginx, it routes on the normalised path (``/api/%2e%2e/metrics`` is ``/metrics``, refused)
and forwards that path, never the raw one: an HTTP client would resolve the dots after the
routing decision (issue 24).
Development only: production runs the real nginx (docker-compose.prod.yml).

Run: ``python -m devtools.dev_console --port 8080 --api http://127.0.0.1:5000``.
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
from urllib.parse import quote

import click
import requests
from werkzeug.security import safe_join
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from libs.common.settings import ROOT
from libs.web.errors import error_code

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
#: Characters a path segment may hold unencoded (RFC 3986 pchar, without "%").
_PATH_SAFE = "/:@!$&'()*+,;=-._~"

_HEADER_LINE = re.compile(r'^\s*add_header\s+([A-Za-z-]+)\s+"([^"]*)"\s+always;', re.MULTILINE)


def security_headers(path: Path = SECURITY_HEADERS) -> list[tuple[str, str]]:
    """The ``add_header NAME "VALUE" always;`` lines of the nginx snippet."""
    return _HEADER_LINE.findall(path.read_text()) if path.exists() else []


def _json_error(status: int, message: str) -> Response:
    # The API's error shape, so the SPA shows a proxy failure like any other error.
    body = {"error": {"code": error_code(status), "message": message}}
    return Response(json.dumps(body), status=status, mimetype="application/json")


class JsonErrorsRequestHandler(WSGIRequestHandler):
    """What the HTTP server refuses before the app runs (a request line over 64 KB, over 100
    headers, a malformed request) is answered in the JSON error shape too."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        reason = message or self.responses.get(code, ("error",))[0]
        self.log_error("code %d, message %s", code, reason)
        if self.request_version == "HTTP/0.9":
            # A request line that did not parse leaves the default, which would answer with a
            # bare body; every client here speaks HTTP/1.x.
            self.request_version = "HTTP/1.0"
        body = json.dumps({"error": {"code": error_code(code), "message": reason}}).encode()
        self.send_response(code, reason)
        self.send_header("Connection", "close")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def normalize_path(path: str) -> str | None:
    """The path as nginx routes it: slashes merged, ``.`` and ``..`` segments resolved, a
    trailing slash kept. ``path`` is the decoded PATH_INFO, so ``%2e`` and ``%2f`` are already
    dots and slashes, as nginx decodes them before resolving. None where nginx answers 400: a
    ``..`` above the root, or a NUL."""
    if "\x00" in path:
        return None
    segments: list[str] = []
    for part in path.split("/"):
        if part == "..":
            if not segments:
                return None
            segments.pop()
        elif part not in ("", "."):
            segments.append(part)
    normalized = "/" + "/".join(segments)
    trailing = path.endswith("/") or path.rsplit("/", 1)[-1] in (".", "..")
    return normalized + "/" if trailing and segments else normalized


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
        path = normalize_path(request.path)
        if path is None:
            response = _json_error(400, "the path is not a valid URL path")
        elif path.startswith("/api/"):
            response = self.proxy(request, path)
        elif path in PRIVATE_PATHS:
            response = _json_error(404, "not served on the public side")
        else:
            response = self.static(path)
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

    def proxy(self, request: Request, path: str) -> Response:
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return _json_error(413, "the request body is over 10 MB")
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
        url = self.api_base + quote(path, safe=_PATH_SAFE)
        if request.query_string:
            url += "?" + request.query_string.decode("latin-1")
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
            return _json_error(502, reason)
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
    server = make_server(
        host, port, DevConsole(api_base), threaded=True, request_handler=JsonErrorsRequestHandler
    )
    server.serve_forever()


if __name__ == "__main__":
    main()
