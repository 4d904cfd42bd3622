"""Actor contracts: each message type's name, queue, parameters and retry policy, declared once.

Producers build messages only through a contract, so a message can never carry an argument the
worker does not expect; a test checks every worker actor against its contract.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import dramatiq

from libs.common.request_context import get_request_id

#: The queues the worker consumes, from most to least urgent.
QUEUES = ("high", "default", "low", "receipts", "recordings", "webhooks", "maintenance")
#: Queues whose idle consumers poll at WORKER_POLL_MS (a freed slot's next call, a lead from a
#: call, a ping); the others, and every delay queue, at WORKER_BACKGROUND_POLL_MS.
URGENT_QUEUES = ("high", "default")

#: Longest string argument: messages carry ids and small values, never serialized rows.
MAX_STRING_ARGUMENT = 2048

Primitive = str | int | float | bool | None


class ContractError(TypeError):
    """A message or an implementation does not match its contract."""


@dataclass(frozen=True)
class ActorContract:
    name: str
    queue: str
    params: tuple[str, ...]
    max_retries: int = 3
    min_backoff_ms: int = 5_000
    max_backoff_ms: int = 300_000
    time_limit_ms: int = 60_000
    #: Messages older than this are dropped unprocessed (None: no limit).
    max_age_ms: int | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.queue not in QUEUES:
            raise ContractError(f"{self.name}: unknown queue {self.queue!r}")
        if "." not in self.name:
            raise ContractError(f"{self.name}: actor names are domain.verb, e.g. calls.status")

    def message(self, **kwargs: Any) -> dramatiq.Message[Any]:
        """Build a message after checking the arguments; raises ContractError when they differ."""
        check_arguments(self, kwargs)
        options: dict[str, Any] = {}
        request_id = get_request_id()
        if request_id:
            options["request_id"] = request_id
        return dramatiq.Message(
            queue_name=self.queue,
            actor_name=self.name,
            args=(),
            kwargs=dict(kwargs),
            options=options,
        )

    def send(self, broker: dramatiq.Broker, **kwargs: Any) -> dramatiq.Message[Any]:
        """Enqueue now. Inside a database transaction use outbox.enqueue_after_commit instead."""
        return broker.enqueue(self.message(**kwargs))

    def actor_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "max_retries": self.max_retries,
            "min_backoff": self.min_backoff_ms,
            "max_backoff": self.max_backoff_ms,
            "time_limit": self.time_limit_ms,
        }
        if self.max_age_ms is not None:
            options["max_age"] = self.max_age_ms
        return options


def check_arguments(contract: ActorContract, kwargs: Mapping[str, Any]) -> None:
    given, expected = set(kwargs), set(contract.params)
    if given != expected:
        missing, extra = sorted(expected - given), sorted(given - expected)
        raise ContractError(
            f"{contract.name} takes ({', '.join(contract.params)}); "
            f"missing: {missing or 'none'}, unexpected: {extra or 'none'}"
        )
    for name, value in kwargs.items():
        if not is_primitive(value):
            raise ContractError(
                f"{contract.name}: argument {name!r} must be an id or a JSON primitive "
                f"(str, int, float, bool, None), not {type(value).__name__}"
            )


def is_primitive(value: object) -> bool:
    # type() and not isinstance(): enums, str subclasses and models must not slip through.
    kind = type(value)
    if value is None or kind in (bool, int):
        return True
    if kind is float:
        return math.isfinite(value)  # type: ignore[arg-type]
    if kind is str:
        return len(value) <= MAX_STRING_ARGUMENT  # type: ignore[arg-type]
    return False


def implementation_problems(contract: ActorContract, fn: Callable[..., Any]) -> list[str]:
    """Why ``fn`` cannot implement ``contract`` (an empty list when it can)."""
    problems = []
    parameters = list(inspect.signature(fn).parameters.values())
    names = tuple(p.name for p in parameters)
    if names != contract.params:
        problems.append(
            f"{contract.name}: contract parameters {contract.params} but "
            f"{fn.__module__}.{fn.__qualname__} takes {names}"
        )
    for parameter in parameters:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            problems.append(f"{contract.name}: *args/**kwargs hide mismatches ({parameter.name})")
        elif parameter.kind is parameter.POSITIONAL_ONLY:
            problems.append(f"{contract.name}: {parameter.name} is positional-only")
        elif parameter.default is not parameter.empty:
            problems.append(
                f"{contract.name}: {parameter.name} has a default; contracts send every parameter"
            )
    return problems
