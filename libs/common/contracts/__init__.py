"""Every message type of the system. A new actor starts with a contract here."""

from libs.common.contracts.base import (
    QUEUES,
    URGENT_QUEUES,
    ActorContract,
    ContractError,
    check_arguments,
    implementation_problems,
    is_primitive,
)
from libs.common.contracts.campaigns import (
    CALLS_STATUS_CHANGED,
    DIALER_DISPATCH,
    LEADS_IMPORT_CSV,
)
from libs.common.contracts.inbound import LEADS_CREATE_FROM_CALL, RECORDINGS_PROCESS
from libs.common.contracts.outcomes import (
    AMD_ACT,
    OUTCOMES_APPLY,
    OUTCOMES_PRICE,
    OUTCOMES_SWEEP,
    RECORDINGS_EXPIRE,
    RECORDINGS_FETCH,
)
from libs.common.contracts.receipts import RECEIPTS_SYNC
from libs.common.contracts.schedules import (
    SCHEDULES_CHECK_DUE,
    SCHEDULES_PLACE_CALL,
    SCHEDULES_TICK,
)
from libs.common.contracts.system import MAINTENANCE_RECONCILE, SYSTEM_PING
from libs.common.contracts.webhooks import WEBHOOKS_DELIVER, WEBHOOKS_SWEEP

ALL_CONTRACTS: tuple[ActorContract, ...] = (
    SYSTEM_PING,
    MAINTENANCE_RECONCILE,
    DIALER_DISPATCH,
    CALLS_STATUS_CHANGED,
    LEADS_IMPORT_CSV,
    SCHEDULES_TICK,
    SCHEDULES_CHECK_DUE,
    SCHEDULES_PLACE_CALL,
    LEADS_CREATE_FROM_CALL,
    RECORDINGS_PROCESS,
    RECEIPTS_SYNC,
    WEBHOOKS_DELIVER,
    WEBHOOKS_SWEEP,
    OUTCOMES_APPLY,
    OUTCOMES_SWEEP,
    RECORDINGS_FETCH,
    RECORDINGS_EXPIRE,
    OUTCOMES_PRICE,
    AMD_ACT,
)

BY_NAME: dict[str, ActorContract] = {c.name: c for c in ALL_CONTRACTS}
if len(BY_NAME) != len(ALL_CONTRACTS):
    raise ContractError("two contracts share a name")

__all__ = [
    "ALL_CONTRACTS",
    "AMD_ACT",
    "BY_NAME",
    "CALLS_STATUS_CHANGED",
    "DIALER_DISPATCH",
    "LEADS_CREATE_FROM_CALL",
    "LEADS_IMPORT_CSV",
    "MAINTENANCE_RECONCILE",
    "OUTCOMES_APPLY",
    "OUTCOMES_PRICE",
    "OUTCOMES_SWEEP",
    "QUEUES",
    "RECEIPTS_SYNC",
    "RECORDINGS_EXPIRE",
    "RECORDINGS_FETCH",
    "RECORDINGS_PROCESS",
    "SCHEDULES_CHECK_DUE",
    "SCHEDULES_PLACE_CALL",
    "SCHEDULES_TICK",
    "SYSTEM_PING",
    "URGENT_QUEUES",
    "WEBHOOKS_DELIVER",
    "WEBHOOKS_SWEEP",
    "ActorContract",
    "ContractError",
    "check_arguments",
    "implementation_problems",
    "is_primitive",
]
