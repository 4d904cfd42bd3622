"""Binds actor implementations to their contracts.

Implementations are plain functions marked with ``@implements(CONTRACT)``;
``services.worker.actors.register_actors`` turns them into Dramatiq actors on a given broker
(the real one, or a StubBroker in tests), so no actor depends on which broker happened to be
global when its module was imported. This module imports no actor (no import cycle).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from libs.common import metrics
from libs.common.contracts import ActorContract, ContractError, implementation_problems

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

#: Actor name → (contract, implementation), filled as actor modules are imported.
IMPLEMENTATIONS: dict[str, tuple[ActorContract, Callable[..., Any]]] = {}


class MissingRow(Exception):
    """The row a message names is gone: logged and counted, never retried."""


def implements(contract: ActorContract) -> Callable[[F], F]:
    def decorate(fn: F) -> F:
        problems = implementation_problems(contract, fn)
        if problems:
            raise ContractError("; ".join(problems))
        if contract.name in IMPLEMENTATIONS:
            raise ContractError(f"{contract.name} is implemented twice")
        IMPLEMENTATIONS[contract.name] = (contract, fn)
        return fn

    return decorate


def skip_missing_rows(contract: ActorContract, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def run(**kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except MissingRow as exc:
            logger.warning("%s skipped: %s", contract.name, exc)
            metrics.ACTOR_MISSING_ROWS.labels(contract.name).inc()
            return None

    return run
