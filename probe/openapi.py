"""The api's operations, read from its own /api/openapi.json: a new operation is probed without
editing the probe. Also what to send them: plausible bodies, and values of the wrong type."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

#: Who may call what. The document says a token is needed but not whose role; these are the
#: platform's rules (README, "operator tokens for platform-wide endpoints").
OPERATOR_ONLY = re.compile(r"^/api/(admin/|queue/status$)")
EITHER_ROLE = {"/api/me", "/api/jobs/{job_id}", "/api/system/ping", "/api/schedules/trigger"}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def role(self) -> str:
        """public, operator, either or business."""
        if self.spec.get("security") == []:
            return "public"
        if OPERATOR_ONLY.match(self.path):
            return "operator"
        return "either" if self.path in EITHER_ROLE else "business"

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"\{(\w+)\}", self.path)

    def query_params(self) -> list[dict[str, Any]]:
        return [p for p in self.spec.get("parameters", []) if p.get("in") == "query"]

    def json_schema(self) -> dict[str, Any] | None:
        content = (self.spec.get("requestBody") or {}).get("content", {})
        schema = content.get("application/json", {}).get("schema")
        return schema if isinstance(schema, dict) else None

    def fill(self, ids: dict[str, Any], default: str = "1") -> str:
        path = self.path
        for name in self.path_params:
            path = path.replace("{" + name + "}", str(ids.get(name, default)))
        return path


def operations(doc: dict[str, Any]) -> list[Operation]:
    return [
        Operation(method.upper(), path, spec)
        for path, methods in doc["paths"].items()
        for method, spec in methods.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def types_of(schema: dict[str, Any]) -> set[str]:
    kind = schema.get("type", "object")
    return set(kind) if isinstance(kind, list) else {kind}


def properties(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: resolve(doc, v) for k, v in resolve(doc, schema).get("properties", {}).items()}


def plausible_value(schema: dict[str, Any], name: str, ids: dict[str, Any]) -> Any:
    if "enum" in schema:
        return next((v for v in schema["enum"] if v is not None), None)
    types = types_of(schema)
    if name in ids and types & {"integer", "string"}:
        return ids[name]
    if "integer" in types or "number" in types:
        return max(1, int(schema.get("minimum", 1)))
    if "boolean" in types:
        return True
    if "string" in types:
        return {"phone": "+14155550999", "local_time": "09:00", "timezone": "UTC"}.get(
            name, "probe"
        )
    if "array" in types:
        return []
    return {}


def _item(doc: dict[str, Any], schema: dict[str, Any], ids: dict[str, Any]) -> list[Any]:
    """An array of one plausible item (an empty list is often refused for itself)."""
    items = resolve(doc, schema.get("items", {}))
    if types_of(items) & {"object"} and items.get("properties"):
        return [plausible_body(doc, items, ids)]
    return [plausible_value(items, "", ids)] if items else []


def plausible_body(
    doc: dict[str, Any], schema: dict[str, Any], ids: dict[str, Any]
) -> dict[str, Any]:
    """A body shaped like the schema: required fields and known ids filled."""
    props = properties(doc, schema)
    required = set(resolve(doc, schema).get("required", []))
    return {
        name: _item(doc, sub, ids) if "array" in types_of(sub) else plausible_value(sub, name, ids)
        for name, sub in props.items()
        if name in required or name in ids
    }


def closed(doc: dict[str, Any], schema: dict[str, Any]) -> bool:
    """Whether the schema refuses properties it does not name."""
    return resolve(doc, schema).get("additionalProperties") is False


def wrong_value(schema: dict[str, Any]) -> tuple[Any, str] | None:
    """A value of a JSON type the schema does not allow, and its name; None if all are."""
    types = types_of(schema)
    if "oneOf" in schema or "anyOf" in schema or not schema.get("type"):
        return None
    for value, kind in ((True, "boolean"), ("probe", "string"), (7, "integer"),
                        ([1], "array"), ({"x": 1}, "object")):  # fmt: skip
        allowed = kind in types or (kind == "integer" and "number" in types)
        if not allowed:
            return value, kind
    return None
