"""One HTTP request of a delivery: POST the signed body to the checked address, read the start
of the answer, and say what happened. Never raises for anything the endpoint does.

urllib3 is driven directly (not requests) because it lets the connection go to the address the
SSRF guard checked while the request keeps the URL's host: ``Host`` header, TLS SNI and the
certificate's name check all use the name. No proxy from the environment, no redirects, no
retries: the schedule of retries is the delivery's own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError, TimeoutError

from libs.common.models import AttemptOutcome
from libs.events import ssrf

#: Bytes of the answer's body kept in the delivery log.
RESPONSE_SNIPPET = 1024
USER_AGENT = "Switchboard-Webhooks/1"
#: A connection that takes longer than this is not coming (the read gets the whole timeout).
MAX_CONNECT_S = 5.0


@dataclass(frozen=True)
class Answer:
    outcome: AttemptOutcome
    latency_s: float
    http_status: int | None = None
    snippet: str | None = None
    error: str | None = None


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout_s: float,
    allow_private: bool,
    resolver: ssrf.Resolver = ssrf.system_resolver,
    ca_certs: str | None = None,
) -> Answer:
    """``ca_certs``: a CA bundle to trust instead of the system's (tests)."""
    started = time.monotonic()
    try:
        target = ssrf.resolve(url, allow_private=allow_private, resolver=resolver)
    except ssrf.UrlRefused as exc:
        return Answer(AttemptOutcome.REFUSED, time.monotonic() - started, error=str(exc))
    timeout = urllib3.Timeout(connect=min(timeout_s, MAX_CONNECT_S), read=timeout_s)
    pool: urllib3.HTTPConnectionPool
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            target.address, target.port, timeout=timeout, retries=False, maxsize=1,
            server_hostname=target.host, assert_hostname=target.host, cert_reqs="CERT_REQUIRED",
            ca_certs=ca_certs,
        )  # fmt: skip
    else:
        pool = urllib3.HTTPConnectionPool(
            target.address, target.port, timeout=timeout, retries=False, maxsize=1
        )
    request_headers = {
        **headers,
        "Host": target.host_header,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }
    try:
        response = pool.urlopen(
            "POST", target.target, body=body, headers=request_headers, redirect=False,
            retries=False, preload_content=False, assert_same_host=False,
        )  # fmt: skip
        try:
            # Only the start of the answer is kept; the rest is never read.
            start = response.read(RESPONSE_SNIPPET)
        finally:
            response.close()
    except NewConnectionError as exc:  # a subclass of TimeoutError, for urllib3's history
        return Answer(AttemptOutcome.CONNECTION_ERROR, time.monotonic() - started,
                      error=_describe(exc, target))  # fmt: skip
    except TimeoutError:
        return Answer(AttemptOutcome.TIMEOUT, time.monotonic() - started,
                      error=f"no answer within {timeout_s:g} s")  # fmt: skip
    except (HTTPError, OSError) as exc:
        return Answer(AttemptOutcome.CONNECTION_ERROR, time.monotonic() - started,
                      error=_describe(exc, target))  # fmt: skip
    finally:
        pool.close()
    latency = time.monotonic() - started
    status = response.status
    snippet = _text(start.decode("utf-8", errors="replace"))
    if 200 <= status < 300:
        return Answer(AttemptOutcome.SUCCEEDED, latency, status, snippet)
    error = f"HTTP {status}"
    if 300 <= status < 400:
        location = _text(response.headers.get("Location") or "")[:200]
        error += f": redirects are not followed (Location: {location or 'none'})"
    return Answer(AttemptOutcome.HTTP_ERROR, latency, status, snippet, error)


def _describe(exc: BaseException, target: ssrf.Target) -> str:
    """The cause without urllib3's wrapping (which names the pool, not the endpoint)."""
    cause: BaseException = exc
    while cause.__context__ is not None and isinstance(cause, HTTPError):
        cause = cause.__context__
    reason = str(cause) or type(cause).__name__
    if "]" in reason and reason.startswith("[Errno"):
        reason = reason.split("]", 1)[1].strip()
    return _text(f"{target.host}:{target.port} ({target.address}): {reason}"[:500])


def _text(value: str) -> str:
    """Storable text: whatever an endpoint answers, PostgreSQL refuses NUL characters."""
    return value.replace("\x00", "\ufffd")
