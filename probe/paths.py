"""Paths that try to reach the services' private endpoints (/metrics, /healthz, /readyz) through
the public entry with dot segments and escapes (issue 24, item 4), with the status nginx
answers each one with; the dev console of `switchboard run` must answer the same."""

from __future__ import annotations

#: (path exactly as sent, nginx's status). 404: a private location; 400: a path above the root
#: or holding a NUL; 200: the SPA's history fallback; the other 404s are the api's own answer
#: to a path it does not have.
PRIVATE_PATH_PROBES = [
    ("/api/../metrics", 404),
    ("/api/%2e%2e/metrics", 404),
    ("/api/..%2fmetrics", 404),
    ("/api/%2e%2e%2fmetrics", 404),
    ("/api/%2E%2E/metrics", 404),
    ("/api/.%2e/metrics", 404),
    ("/api/./../metrics", 404),
    ("/api//../metrics", 404),
    ("/api/me/../../metrics", 404),
    ("/api/../healthz", 404),
    ("/api/%2e%2e/readyz", 404),
    ("//metrics", 404),
    ("/./metrics", 404),
    ("/metrics", 404),
    ("/healthz", 404),
    ("/readyz", 404),
    ("/api/../../metrics", 400),
    ("/api/%2e%2e/%2e%2e/metrics", 400),
    ("/api/..%2f..%2fmetrics", 400),
    ("/api/%00/../metrics", 400),
    ("/api/..", 200),
    ("/metrics/.", 200),
    ("/api/..%5cmetrics", 404),
    ("/api/%252e%252e/metrics", 404),
    ("/api/%2e%2e;/metrics", 404),
    ("/api/me/..", 404),
]


def serves_private(body: bytes) -> bool:
    """A Prometheus exposition or a health answer: what a private path would give away."""
    health = b'"checks"' in body and b'"database"' in body
    return b"# HELP" in body or b"# TYPE" in body or health
