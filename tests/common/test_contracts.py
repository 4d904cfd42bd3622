"""Contracts: producers and the worker cannot disagree on a message's parameters."""

import enum
import inspect

import pytest

from libs.common.contracts import (
    ALL_CONTRACTS,
    SYSTEM_PING,
    ActorContract,
    ContractError,
    implementation_problems,
)
from libs.common.settings import Settings
from libs.queueops.broker import build_broker
from services.worker.actors import register_actors
from services.worker.registry import IMPLEMENTATIONS, implements

PING_LIKE = ActorContract(name="test.ping_like", queue="default", params=("background_job_id",))


def test_a_mismatching_pair_is_detected() -> None:
    def renamed(job_id: int) -> None: ...

    def extra(background_job_id: int, retry: bool) -> None: ...

    def defaulted(background_job_id: int = 0) -> None: ...

    def catch_all(**kwargs: object) -> None: ...

    for fn in (renamed, extra, defaulted, catch_all):
        assert implementation_problems(PING_LIKE, fn), fn.__name__
        with pytest.raises(ContractError):
            implements(PING_LIKE)(fn)
    assert "test.ping_like" not in IMPLEMENTATIONS


def test_a_matching_pair_passes() -> None:
    def ping(background_job_id: int) -> None: ...

    assert implementation_problems(PING_LIKE, ping) == []


def test_every_contract_is_implemented_with_exactly_its_parameters() -> None:
    broker = build_broker(Settings(), worker=False, stub=True)
    actors = register_actors(broker)
    contract_names = {c.name for c in ALL_CONTRACTS}
    assert set(actors) == contract_names, "worker actors without a contract, or the reverse"
    assert set(broker.actors) == contract_names
    for contract in ALL_CONTRACTS:
        _, fn = IMPLEMENTATIONS[contract.name]
        params = tuple(inspect.signature(fn).parameters)
        assert params == contract.params, contract.name
        actor = broker.get_actor(contract.name)
        assert actor.queue_name == contract.queue
        assert actor.options["max_retries"] == contract.max_retries


class Colour(enum.Enum):
    RED = 1


@pytest.mark.parametrize(
    "value",
    [{"id": 1}, [1, 2], (1,), b"bytes", Colour.RED, float("nan"), object(), "x" * 5000],
)
def test_arguments_must_be_primitives(value: object) -> None:
    with pytest.raises(ContractError, match="JSON primitive"):
        SYSTEM_PING.message(background_job_id=value)


def test_arguments_must_match_the_parameters() -> None:
    with pytest.raises(ContractError, match="missing"):
        SYSTEM_PING.message()
    with pytest.raises(ContractError, match="unexpected"):
        SYSTEM_PING.message(background_job_id=1, extra=2)


def test_messages_carry_keyword_arguments_only() -> None:
    message = SYSTEM_PING.message(background_job_id=7)
    assert message.args == ()
    assert message.kwargs == {"background_job_id": 7}
    assert message.queue_name == "default"
    assert message.actor_name == "system.ping"


def test_contract_queues_are_known() -> None:
    with pytest.raises(ContractError, match="unknown queue"):
        ActorContract(name="x.y", queue="nowhere", params=())
