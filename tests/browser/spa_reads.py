"""Checks what the console read from API answers (recorded by api_reads.js) against the
OpenAPI document: each field read must be one the answer's schema documents."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

#: The recorder, loaded into each tab before the console's scripts.
RECORDER = Path(__file__).with_name("api_reads.js")


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _options(document: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The schema and, through anyOf/oneOf/allOf, every alternative it allows."""
    found, pending = [], [schema]
    while pending:
        current = _resolve(document, pending.pop())
        alternatives = (
            current.get("anyOf", []) + current.get("oneOf", []) + current.get("allOf", [])
        )
        pending.extend(alternatives)
        found.append(current)
    return found


#: Keys that make a schema say something about its value; without any, it allows anything
#: (a free-form ``dict[str, Any]`` value, a job's ``result``), and so does every field below.
_CONSTRAINING = {"type", "properties", "items", "$ref", "anyOf", "oneOf", "allOf", "enum",
                 "const", "additionalProperties"}  # fmt: skip


def _step(document: dict[str, Any], schemas: list[dict[str, Any]], part: str) -> list[Any]:
    after: list[Any] = []
    for schema in schemas:
        for option in _options(document, schema):
            free = option.get("additionalProperties") is True or (
                option.get("type") == "object" and "properties" not in option
                and "additionalProperties" not in option
            )  # fmt: skip
            if not _CONSTRAINING & set(option) or (part != "[]" and free):
                after.append({})
            elif part == "[]" and "items" in option:
                after.append(option["items"])
            elif part != "[]" and part in option.get("properties", {}):
                after.append(option["properties"][part])
            elif part != "[]" and isinstance(option.get("additionalProperties"), dict):
                after.append(option["additionalProperties"])
    return after


def _operation(document: dict[str, Any], method: str, path: str) -> dict[str, Any] | None:
    for template, operations in document["paths"].items():
        pattern = "^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in operations:
            return operations[method.lower()]  # type: ignore[no-any-return]
    return None


def undocumented(document: dict[str, Any], reads: list[str]) -> list[str]:
    """The reads ("GET /api/runs 200 .items[].progress.percent") no schema documents."""
    problems = []
    for read in sorted(reads):
        method, path, status, field = read.split(" ", 3)
        operation = _operation(document, method, path)
        answer = (operation or {}).get("responses", {}).get(status)
        content = (answer or {}).get("content", {}).get("application/json")
        if content is None:
            problems.append(f"{read}: no documented JSON answer")
            continue
        schemas: list[Any] = [content["schema"]]
        for part in re.findall(r"\[\]|[^.\[\]]+", field):
            schemas = _step(document, schemas, part)
            if not schemas:
                problems.append(f"{read}: {part!r} is not documented")
                break
    return problems
