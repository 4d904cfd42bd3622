"""What the queue-throughput benchmark asks every stack to do, declared once.

Two workloads: a no-op message, and a message that writes one row to PostgreSQL. The row is the
same single-statement INSERT on every stack; only the code around it differs (Switchboard's
worker stack, bare Dramatiq, RQ). Importing this module loads no broker and no metrics.
"""

from __future__ import annotations

from typing import Final

from bench.queue_rows import CREATE_TABLE, INSERT_ROW, TABLE
from libs.common.contracts import ActorContract

__all__ = ["CREATE_TABLE", "INSERT_ROW", "NOOP", "NOOP_CONTRACT", "QUEUE", "TABLE", "WRITE_ROW",
           "WRITE_ROW_CONTRACT"]  # fmt: skip

QUEUE: Final = "default"

#: Actor names on the two Dramatiq stacks; RQ uses the functions in bench.queue_rq.
NOOP: Final = "bench.noop"
WRITE_ROW: Final = "bench.write_row"

# Switchboard's side builds its messages through contracts, as every producer in the system
# does (argument check, request id); the worker implements them with @implements.
NOOP_CONTRACT: Final = ActorContract(
    name=NOOP, queue=QUEUE, params=("n",), description="Benchmark: does nothing."
)
WRITE_ROW_CONTRACT: Final = ActorContract(
    name=WRITE_ROW, queue=QUEUE, params=("n",), description="Benchmark: inserts one row."
)
