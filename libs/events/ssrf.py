"""Where a delivery may go: the SSRF guard of event webhooks.

A business chooses the URL, so without a guard it could make the worker reach what only the
worker can reach (the cloud's metadata service at 169.254.169.254, Redis on localhost, the
database on the private network). Unless ``WEBHOOK_ALLOW_PRIVATE_URLS`` allows them (the
default outside production), addresses that are not globally routable are refused: private,
loopback, link-local, multicast, reserved, unspecified and shared (CGNAT), IPv4 inside IPv6
(mapped, 6to4, Teredo, NAT64) judged by the IPv4 address inside.

The check runs when an endpoint is registered and again at every delivery, on the addresses
the name resolves to *then*; the sender connects to the address that was checked (never
resolving the name a second time), so a name that resolves to a public address for the check
and to a private one a moment later (DNS rebinding) still cannot reach it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: (host, port) → the addresses the name resolves to, as strings.
Resolver = Callable[[str, int], list[str]]

MAX_URL_LENGTH = 2048
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


class UrlRefused(ValueError):
    """The URL is malformed, or names a place deliveries may not go; the message says why."""


@dataclass(frozen=True)
class Target:
    """Where one request goes: the URL's parts and the checked address to connect to."""

    scheme: str
    host: str
    port: int
    #: Path and query, as sent in the request line.
    target: str
    address: str

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise UrlRefused(f"the host {host} does not resolve ({exc})") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def parse(url: str) -> SplitResult:
    """Check the URL's form (not where it points); raises UrlRefused."""
    if not isinstance(url, str) or not url:
        raise UrlRefused("url must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"url is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise UrlRefused("url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRefused(f"url is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise UrlRefused("url must start with https:// or http://")
    if not parts.hostname:
        raise UrlRefused("url has no host")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("url must not contain credentials; receivers check the signature")
    if parts.fragment:
        raise UrlRefused("url must not have a #fragment (it is never sent)")
    if port == 0:
        raise UrlRefused("url has port 0")
    return parts


def why_refused(address: str) -> str | None:
    """Why deliveries may not reach ``address`` (None: a globally routable address)."""
    ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and any(ip in net for net in _NAT64):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            reason = why_refused(str(embedded))
            return f"{reason} (inside {ip})" if reason else None
    for kind in ("loopback", "unspecified", "link_local", "multicast", "reserved", "private"):
        if getattr(ip, f"is_{kind}"):
            return f"{ip} is a {kind.replace('_', '-')} address"
    if not ip.is_global:
        return f"{ip} is not a globally routable address"
    return None


def resolve(url: str, *, allow_private: bool, resolver: Resolver = system_resolver) -> Target:
    """The URL's target with the address to connect to, every resolved address checked.

    Refused when any address the name resolves to is refused: a name that also points inside
    must not be reachable by chance of which address comes first."""
    parts = parse(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = resolver(host, port)
    if not addresses:
        raise UrlRefused(f"the host {host} has no address")
    if not allow_private:
        for address in addresses:
            reason = why_refused(address)
            if reason:
                shown = "" if address == host else f" resolves to {address}:"
                raise UrlRefused(f"{host}{shown} {reason}; deliveries may not go there")
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    return Target(parts.scheme, host, port, target, addresses[0])


def check_registration(
    url: str, *, allow_private: bool, resolver: Resolver = system_resolver
) -> str:
    """The URL to store, checked as a delivery would check it; raises UrlRefused."""
    parse(url)
    if not allow_private:
        resolve(url, allow_private=False, resolver=resolver)
    return url
