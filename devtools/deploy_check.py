"""Validate deploy/nginx against docker-compose.prod.yml: every host nginx sends traffic to is a
compose service listening on that port, and every public route reaches an existing service.

This is the check that would have caught upstreams named after services that did not exist
(502s in production).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import crossplane
import yaml

#: Where deploy/nginx is mounted in the nginx container; includes are resolved back to the repo.
CONTAINER_CONFIG_DIR = "/etc/nginx/switchboard/"

#: Public routes the product needs, and the compose service behind each.
REQUIRED_ROUTES = {"/api/": "api", "/webhook/": "calls", "/ws/": "calls"}


@dataclass(frozen=True)
class Directive:
    name: str
    args: list[str]
    file: str
    line: int
    block: list[Directive]


def _parse_file(path: Path, config_dir: Path) -> list[Directive]:
    payload = crossplane.parse(str(path), single=True, comments=False, check_ctx=False)
    errors = payload["errors"] or payload["config"][0]["errors"]
    if errors:
        first = errors[0]
        raise ValueError(f"{path}:{first.get('line')}: {first.get('error')}")
    return _convert(payload["config"][0]["parsed"], path, config_dir)


def _convert(raw: list[dict[str, Any]], path: Path, config_dir: Path) -> list[Directive]:
    out: list[Directive] = []
    for item in raw:
        if item["directive"] == "include" and item["args"][0].startswith(CONTAINER_CONFIG_DIR):
            target = config_dir / item["args"][0][len(CONTAINER_CONFIG_DIR) :]
            out.extend(_parse_file(target, config_dir))
            continue
        block = _convert(item.get("block", []), path, config_dir)
        out.append(Directive(item["directive"], item["args"], str(path), item["line"], block))
    return out


def _walk(
    directives: list[Directive], location: str | None = None
) -> Iterator[tuple[Directive, str | None]]:
    for directive in directives:
        yield directive, location
        inner = directive.args[-1] if directive.name == "location" and directive.args else location
        yield from _walk(directive.block, inner)


def _compose_services(compose_path: Path) -> dict[str, set[int]]:
    data = yaml.safe_load(compose_path.read_text())
    services: dict[str, set[int]] = {}
    for name, spec in (data.get("services") or {}).items():
        ports = {int(str(p).split("/")[0]) for p in spec.get("expose", [])}
        for mapping in spec.get("ports", []):
            ports.add(int(str(mapping).rsplit(":", 1)[-1].split("/")[0]))
        services[name] = ports
    return services


def check(nginx_conf: Path, compose_path: Path, root: Path | None = None) -> list[str]:
    """Every problem found, as ``file:line: message`` (an empty list when all is well)."""
    root = root or Path.cwd()
    services = _compose_services(compose_path)
    directives = _parse_file(nginx_conf, nginx_conf.parent)
    problems: list[str] = []
    upstreams: dict[str, Directive] = {}
    for directive, _ in _walk(directives):
        if directive.name == "upstream":
            upstreams[directive.args[0]] = directive

    def where(d: Directive) -> str:
        try:
            return f"{Path(d.file).resolve().relative_to(root.resolve())}:{d.line}"
        except ValueError:
            return f"{d.file}:{d.line}"

    def check_host(d: Directive, what: str, host: str, port: int | None) -> None:
        if host not in services:
            problems.append(
                f"{where(d)}: {what}: no service {host!r} in {compose_path.name} "
                f"(services: {', '.join(sorted(services))})"
            )
        elif port is not None and port not in services[host]:
            listening = ", ".join(str(p) for p in sorted(services[host])) or "none declared"
            problems.append(
                f"{where(d)}: {what}: service {host!r} does not listen on {port} "
                f"(exposes: {listening})"
            )

    for name, upstream in upstreams.items():
        for server in (d for d in upstream.block if d.name == "server"):
            host, _, port = server.args[0].partition(":")
            check_host(server, f"upstream {name!r} server {server.args[0]!r}", host,
                       int(port) if port else 80)  # fmt: skip

    routes: dict[str, set[str]] = {}
    for directive, location in _walk(directives):
        if directive.name != "proxy_pass":
            continue
        target = urlsplit(directive.args[0])
        host = target.hostname or ""
        if host in upstreams:
            backends = {
                s.args[0].partition(":")[0] for s in upstreams[host].block if s.name == "server"
            }
        else:
            check_host(directive, f"proxy_pass {directive.args[0]!r}", host, target.port or 80)
            backends = {host}
        if location:
            routes.setdefault(location, set()).update(backends)

    for route, service in REQUIRED_ROUTES.items():
        if route not in routes:
            problems.append(
                f"{nginx_conf}: public route {route} is missing (it must reach {service!r})"
            )
        elif service not in routes[route]:
            problems.append(
                f"{nginx_conf}: public route {route} reaches {sorted(routes[route])}, "
                f"not the {service!r} service"
            )
        elif service not in services:
            problems.append(f"{nginx_conf}: public route {route}: service {service!r} is missing")
    return problems


#: The application services, which all need the same broker settings.
APP_SERVICES = ("migrate", "api", "calls", "worker", "scheduler")
#: The compose profile that starts RabbitMQ, and its service.
RABBITMQ_PROFILE = RABBITMQ_SERVICE = "rabbitmq"


def check_broker(compose_path: Path, env: Mapping[str, str]) -> list[str]:
    """The broker settings of ``env`` (the ``.env`` file) against the compose file: a
    ``BROKER_URL`` must reach a service listening on its port, started by the active profiles;
    RabbitMQ started with no service using it, or without a password, is a mistake too."""
    data = yaml.safe_load(compose_path.read_text())
    specs: dict[str, Any] = data.get("services") or {}
    services = _compose_services(compose_path)
    profiles = {p.strip() for p in env.get("COMPOSE_PROFILES", "").split(",") if p.strip()}
    problems = [
        f"{compose_path.name}: service {name!r} does not pass BROKER_URL to the application"
        for name in APP_SERVICES
        if name in specs and "BROKER_URL" not in (specs[name].get("environment") or {})
    ]
    url = env.get("BROKER_URL", "").strip()
    if not url.startswith(("amqp://", "amqps://")):
        if RABBITMQ_PROFILE in profiles:
            problems.append(
                "COMPOSE_PROFILES starts rabbitmq but BROKER_URL is not an amqp:// URL: "
                "nothing would use it (set BROKER_URL=amqp://switchboard:…@rabbitmq:5672/%2F)"
            )
        return problems
    target = urlsplit(url)
    host, port = target.hostname or "", target.port or 5672
    if host not in services:
        problems.append(
            f"BROKER_URL: no service {host!r} in {compose_path.name} "
            f"(services: {', '.join(sorted(services))})"
        )
        return problems
    if port not in services[host]:
        problems.append(f"BROKER_URL: service {host!r} does not listen on {port}")
    needed = set(specs[host].get("profiles") or [])
    if needed and not needed & profiles:
        problems.append(
            f"BROKER_URL names {host!r}, which only runs with the profile "
            f"{', '.join(sorted(needed))}: add it to COMPOSE_PROFILES"
        )
    if host == RABBITMQ_SERVICE and not env.get("RABBITMQ_PASSWORD", "").strip():
        problems.append("RABBITMQ_PASSWORD is empty: the rabbitmq service needs one")
    if "healthcheck" not in specs[host]:
        problems.append(f"{compose_path.name}: the broker service {host!r} has no healthcheck")
    return problems


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of a compose ``.env`` file (comments and blank lines skipped)."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip().strip("'\"")
    return env
