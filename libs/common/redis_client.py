"""Redis clients with bounded timeouts: a dead Redis must answer 'no' quickly, never hang.

Every Redis URL the project reads (``REDIS_URL``, a Redis ``BROKER_URL``) may name a Sentinel
deployment instead of one server::

    redis+sentinel://[:password@]host1:26379,host2:26379/<service>[/<db>]

The client then asks the Sentinels for the service's current master, and after a failover it
drops its connections to the old one (a demoted master answers READONLY) and finds the new
one, so a command retried after a failover reaches the promoted replica.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

SENTINEL_SCHEME = "redis+sentinel"
#: Schemes a Redis URL may use (``unix://`` is the embedded server's socket).
REDIS_SCHEMES = ("redis", "rediss", "unix", SENTINEL_SCHEME)


@dataclass(frozen=True)
class SentinelAddress:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    password: str | None


def parse_sentinel_url(url: str) -> SentinelAddress:
    """Raises ValueError naming what is wrong with a ``redis+sentinel://`` URL."""
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        raise ValueError(f"not a {SENTINEL_SCHEME}:// URL")
    hosts = parts.netloc.rsplit("@", 1)[-1]
    sentinels = []
    for host in filter(None, hosts.split(",")):
        name, _, port = host.rpartition(":") if ":" in host else (host, "", "26379")
        if not name or not port.isdigit():
            raise ValueError(f"sentinel address {host!r} is not host:port")
        sentinels.append((name, int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not sentinels or not path:
        raise ValueError("expected redis+sentinel://host:port[,host:port]/<service>[/<db>]")
    if len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError("the path must be /<service> or /<service>/<db number>")
    password = unquote(parts.password) if parts.password else None
    return SentinelAddress(
        tuple(sentinels), path[0], int(path[1]) if len(path) > 1 else 0, password
    )


def redis_from_url(url: str, *, timeout_s: float = 5.0, retries: int = 0) -> redis.Redis:
    # redis-py retries failed commands with backoff by default; for health checks and producers
    # that must fail fast we turn that off, so one bounded attempt decides.
    if url.startswith(f"{SENTINEL_SCHEME}:"):
        return _sentinel_master(url, timeout_s, retries)
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        retry=Retry(NoBackoff(), retries),
        health_check_interval=30,
    )


def _sentinel_master(url: str, timeout_s: float, retries: int) -> redis.Redis:
    address = parse_sentinel_url(url)
    timeouts = {"socket_connect_timeout": timeout_s, "socket_timeout": timeout_s}
    sentinel = Sentinel(list(address.sentinels), sentinel_kwargs=timeouts, **timeouts)  # type: ignore[no-untyped-call]
    # A failover takes a few seconds (Sentinel's down-after-milliseconds, then the promotion):
    # clients that may retry space their attempts out instead of spending them at once.
    backoff = ExponentialBackoff(cap=2.0, base=0.1) if retries else NoBackoff()
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        address.service,
        db=address.db,
        password=address.password,
        retry=Retry(backoff, retries),
        health_check_interval=30,
        **timeouts,
    )
    return client


@functools.cache
def shared_redis(url: str, timeout_s: float = 5.0) -> redis.Redis:
    """One client (and connection pool) per URL per process."""
    return redis_from_url(url, timeout_s=timeout_s)
