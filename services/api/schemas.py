"""Shapes every area of the API shares: the error body, pages, paging, ids, bounded text, jobs.

Request models are strict (a boolean is not an integer, a number is not a string) and forbid
unknown fields; every string has a documented maxLength. Text the database cannot store (NUL,
lone surrogates) never reaches them: services/api/spec.py refuses it as the body is read.
Response models read ORM rows by attribute, so a route returns ``Model.model_validate(row)``
and never builds a dict by hand.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from libs.web.validation import MAX_ROW_ID

#: Row ids are BIGINT: a larger number cannot name a row (and would fail in the database).
RowId = Annotated[int, Field(ge=1, le=MAX_ROW_ID)]


HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
#: "HH:MM", 24-hour.
LocalTime = Annotated[str, StringConstraints(max_length=5, pattern=HHMM)]


class Body(BaseModel):
    """A JSON request body: strict types, unknown fields refused."""

    model_config = ConfigDict(strict=True, extra="forbid")


def _not_null(prop: dict[str, Any]) -> None:
    options = prop.get("anyOf", [])
    if {"type": "null"} in options:
        options.remove({"type": "null"})
        if len(options) == 1:
            prop.update(prop.pop("anyOf")[0])


def _absent_not_null(schema: dict[str, Any]) -> None:
    # A query parameter is absent or has a value; it is never JSON null. `int | None` keeps
    # validation simple (None is "not given") and is documented as the plain `int`.
    for prop in schema.get("properties", {}).values():
        _not_null(prop)


def optional(**field: Any) -> Any:
    """``x: T | None = optional()``: a body field that may be left out, documented as plain
    ``T`` (null is taken as left out, not advertised). Unlike ``SkipJsonSchema[None]`` this
    keeps ``T | None`` a nullable type, so errors name the field without a union tag."""
    return Field(None, json_schema_extra=_not_null, **field)


class Query(BaseModel):
    """Query parameters: text converted to the declared types, unknown ones ignored."""

    model_config = ConfigDict(extra="ignore", json_schema_extra=_absent_not_null)


class Shape(BaseModel):
    """A response body, read from attributes (ORM rows) or mappings."""

    model_config = ConfigDict(from_attributes=True, serialize_by_alias=True, validate_by_name=True)


class Problem(Shape):
    """What went wrong: a code to act on and a message for a person."""

    code: str
    message: str


class ErrorDetail(Problem):
    details: Any = Field(None, description="more about it, e.g. the ids or rows concerned")


class Error(Shape):
    """Every 4xx and 5xx: the code to act on, and a message naming the field and the reason."""

    error: ErrorDetail


class Paging(Query):
    page: int = Field(1, ge=1, le=1_000_000)
    per_page: int = Field(50, ge=1, le=200)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


ItemT = TypeVar("ItemT")


class Page(Shape, Generic[ItemT]):
    items: list[ItemT]
    page: int
    per_page: int
    total: int


class JobProgress(Shape):
    done: int
    total: int | None
    percent: float | None


class Job(Shape):
    """A BackgroundJob (CSV import, receipts sync, ping); follow it with GET /api/jobs/{id}."""

    id: int
    business_id: int | None
    kind: str
    status: Literal["queued", "running", "succeeded", "failed"]
    progress: JobProgress
    result: dict[str, Any] | None
    error: Problem | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, job: Any) -> Job:
        total = job.progress_total
        return cls(
            id=job.id,
            business_id=job.business_id,
            kind=job.kind,
            status=job.status.value,
            progress=JobProgress(
                done=job.progress_done,
                total=total,
                percent=round(100 * job.progress_done / total, 1) if total else None,
            ),
            result=job.result,
            error=Problem(code=job.error_code, message=job.error_message or "")
            if job.error_code
            else None,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )


class JobAccepted(Shape):
    job: Job


class Health(Shape):
    """/healthz: the process answers; /readyz: the database and the broker too (`checks`)."""

    status: str
    checks: dict[str, dict[str, Any]] | None = None
    error: Problem | None = None


class Component(Shape):
    model_config = ConfigDict(extra="allow")

    required: bool
    ok: bool


class Status(Shape):
    """Every component's health: database, broker, queues, workers, scheduler."""

    ok: bool
    checked_at: float
    components: dict[str, Component]
