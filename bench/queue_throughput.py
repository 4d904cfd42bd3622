"""Queue throughput: Switchboard's worker stack vs bare Dramatiq vs RQ, side by side, on Redis;
and Switchboard vs bare Dramatiq on RabbitMQ, in the same run.

Two workloads: no-op messages, and messages that each write one row to PostgreSQL. All three
stacks use the same Redis database (flushed before every measurement), the same PostgreSQL
database and the same number of worker processes; the two Dramatiq stacks also the same
threads per process (RQ has none: each ``rq worker`` runs one job at a time, in a forked work
horse, so it gets the same number of processes).

Each measurement drains a backlog: the messages are enqueued with the stack's own producer API
while no worker runs, the queue's list is renamed aside, the workers are started and wait
idle, and renaming the list back releases the whole backlog at once (RQ's blocking pop wakes
on it; Dramatiq's idle poll finds it within 100 ms). The clock runs from that release to the
last message acknowledged, so neither enqueueing nor worker boot is in the figure. Stacks
alternate within each round (the order rotates), several rounds, medians.

On RabbitMQ (a virtual host of the machine's server, made for the run) the backlog waits in a
hold queue that dead-letters into the drained one; the release is a ``max-length: 0`` policy on
the hold queue, which drops (so dead-letters) every message it holds, in order, at once.

    .venv/bin/python -m bench.queue_throughput [--quick] [--rounds 3 --processes 2 --threads 8]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import dramatiq
import pika
import redis
import requests
from dramatiq.brokers.redis import RedisBroker
from rq import Queue
from sqlalchemy import create_engine, text

from bench import queue_rq
from bench.queue_workloads import (
    CREATE_TABLE,
    INSERT_ROW,
    NOOP,
    NOOP_CONTRACT,
    QUEUE,
    TABLE,
    WRITE_ROW,
    WRITE_ROW_CONTRACT,
)
from bench.support import (
    BENCH_REDIS_URL,
    RESULTS,
    Check,
    StealMeter,
    exit_cleanly_on_sigterm,
    history_table,
    median,
    num,
    steal_text,
    table,
    tree_cpu_seconds,
    write_result,
)
from libs.common import migrate
from libs.common.db import Database, normalize_url
from libs.common.metrics_files import reset_multiprocess_dir
from libs.common.settings import Settings
from libs.queueops.broker import build_broker, build_middleware, worker_metrics_env
from libs.queueops.broker_adapter import redis_enqueue
from libs.queueops.broker_adapter.rabbitmq import (
    MESSAGE_ID_OPTION,
    dead_queue,
    declare,
    delay_queue,
)
from libs.queueops.broker_adapter.redis import WAKE_TOKENS_MAX, wake_key
from tests.support import rabbitmq
from tests.support.processes import running, service_env
from tests.support.services import free_port, temporary_postgres_database

NAME = "queue_throughput"
COMMAND = "make bench-queue"
VARIANTS_COMMAND = "make bench-queue-variants"
STACKS = ("switchboard", "dramatiq", "rq")
#: The same two Dramatiq stacks on RabbitMQ.
RABBITMQ_STACKS = ("switchboard_rabbitmq", "dramatiq_rabbitmq")
WORKLOADS = ("noop", "write_row")
#: Where a backlog waits while the workers boot.
HOLD_KEY = "bench:hold"
#: One measurement never runs longer than this.
DRAIN_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Config:
    processes: int
    threads: int
    rounds: int
    #: Messages per workload and stack (RQ may get fewer: see --rq).
    sizes: dict[str, dict[str, int]]
    #: Queues Switchboard's worker consumes (empty: all of them, as in production).
    switchboard_queues: tuple[str, ...] = ()
    #: The stacks compared (``--variants``: Switchboard's against itself configured otherwise).
    stacks: tuple[str, ...] = (*STACKS, *RABBITMQ_STACKS)


@dataclass
class Measurement:
    round: int
    stack: str
    workload: str
    messages: int
    seconds: float
    per_s: float
    enqueue_per_s: float
    worker_cpu_ms_per_message: float
    failed: int
    #: The share of CPU time the host gave other virtual machines while the backlog drained.
    steal: float | None = None


class Target:
    """One stack: how to enqueue a backlog, start its workers, and see the backlog drained."""

    name: str

    def __init__(
        self, redis_url: str, database_url: str, workdir: Path, config: Config, amqp_url: str = ""
    ) -> None:
        self.redis_url = redis_url
        self.database_url = database_url
        self.workdir = workdir
        self.config = config
        self.client = redis.Redis.from_url(redis_url)
        self.amqp_url = amqp_url

    queue_key: str

    def reset(self) -> None:
        """Before a measurement: nothing queued, nothing left of the last one."""
        self.client.flushdb()

    def hold(self) -> None:
        """After the enqueue: the backlog set aside where no worker sees it."""
        self.client.rename(self.queue_key, HOLD_KEY)

    def release(self) -> None:
        """The whole backlog handed to the (idle, ready) workers at once.

        Switchboard's idle consumers of the drained (urgent) queue block until a wake token
        arrives, as every enqueue pushes one: the release pushes them too, or they would see it
        only at the end of their block (bare Dramatiq's consumers ignore the list)."""
        pipeline = self.client.pipeline(transaction=False)
        pipeline.rename(HOLD_KEY, self.queue_key)
        pipeline.delete(wake_key(QUEUE))  # the enqueue's tokens, taken by nobody yet
        pipeline.execute()
        redis_enqueue.wake(self.client, Counter({QUEUE: WAKE_TOKENS_MAX}))

    def enqueue(self, workload: str, count: int) -> None:
        raise NotImplementedError

    def start(self, stack: ExitStack) -> list[int]:
        """Start the workers; return the pids whose process trees do the work."""
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def remaining(self, count: int) -> int:
        raise NotImplementedError

    def failed(self) -> int:
        return 0


class DramatiqTarget(Target):
    queue_key = f"dramatiq:{QUEUE}"
    module = ""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.producer_ids: set[bytes] = set()

    def _argv(self) -> list[str]:
        c = self.config
        return [
            sys.executable,
            "-m",
            "dramatiq",
            self.module,
            "--processes",
            str(c.processes),
            "--threads",
            str(c.threads),
        ]

    def _env(self) -> dict[str, str]:
        # Both Dramatiq stacks idle-poll at most every 100 ms, Switchboard's setting
        # (WORKER_POLL_MS), so the release of a backlog is seen equally soon by both.
        return service_env(
            DATABASE_URL=self.database_url,
            BENCH_REDIS_URL=self.redis_url,
            dramatiq_worker_timeout="100",
        )

    def start(self, stack: ExitStack) -> list[int]:
        log = self.workdir / f"{self.name}.log"
        process = stack.enter_context(running(self._argv(), self._env(), log))
        return [process.pid]

    def _producer(self) -> dramatiq.Broker:
        raise NotImplementedError

    def _message(self, workload: str, n: int) -> dramatiq.Message[Any]:
        raise NotImplementedError

    def enqueue(self, workload: str, count: int) -> None:
        broker = self._producer()
        for n in range(count):
            broker.enqueue(self._message(workload, n))
        self.producer_ids.add(broker.broker_id.encode())  # type: ignore[attr-defined]
        broker.close()

    def ready(self) -> bool:
        # Each worker process's broker stamps its id into the heartbeat set on every poll.
        members = set(self.client.zrange("dramatiq:__heartbeats__", 0, -1))
        return len(members - self.producer_ids) >= self.config.processes

    def remaining(self, count: int) -> int:
        # A message's body leaves this hash only when it is acknowledged.
        return int(self.client.hlen(f"dramatiq:{QUEUE}.msgs"))

    def failed(self) -> int:
        return int(self.client.zcard(f"dramatiq:{QUEUE}.XQ"))


class SwitchboardTarget(DramatiqTarget):
    name = "switchboard"
    module = "bench.queue_switchboard"

    def _argv(self) -> list[str]:
        # Production consumes every queue; --switchboard-queues narrows it, to measure what
        # the idle ones cost.
        queues = self.config.switchboard_queues
        return super()._argv() + (["--queues", *queues] if queues else [])

    def _settings(self) -> Settings:
        return Settings(
            app_env="test",
            service_role="worker",
            database_url=self.database_url,
            redis_url=self.redis_url,
            var_dir=self.workdir / "sb",
            metrics_dir=self.workdir / "sb" / "metrics",
        )

    def _env(self) -> dict[str, str]:
        # What `switchboard worker` (libs/cli/processes.py) puts in the environment
        # before it execs `dramatiq services.worker.main`.
        settings = self._settings()
        reset_multiprocess_dir(settings.metrics_dir / "worker")
        return service_env(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            SERVICE_ROLE="worker",
            SWITCHBOARD_VAR_DIR=str(settings.var_dir),
            METRICS_DIR=str(settings.metrics_dir),
            dramatiq_prom_port=str(free_port()),
            dramatiq_prom_host="127.0.0.1",
            dramatiq_worker_timeout=os.environ.get("WORKER_POLL_MS", "100"),
            **worker_metrics_env(settings),
        )

    def _producer(self) -> dramatiq.Broker:
        # The producers' broker, as the api and calls services build it.
        return build_broker(self._settings().with_overrides(service_role="api"), worker=False)

    def _message(self, workload: str, n: int) -> dramatiq.Message[Any]:
        contract = NOOP_CONTRACT if workload == "noop" else WRITE_ROW_CONTRACT
        return contract.message(n=n)


class AllFastPollTarget(SwitchboardTarget):
    """Switchboard's worker as it was before background and delay queues polled slowly: every
    idle consumer polls at WORKER_POLL_MS."""

    name = "switchboard_all_fast"

    def _env(self) -> dict[str, str]:
        fast = os.environ.get("WORKER_POLL_MS", "100")
        return super()._env() | {"WORKER_BACKGROUND_POLL_MS": fast}


class DrainedQueueOnlyTarget(SwitchboardTarget):
    """Switchboard's worker consuming only the drained queue (and its delay queue), as bare
    Dramatiq does: no idle consumers of other queues at all."""

    name = "switchboard_one_queue"

    def _argv(self) -> list[str]:
        return [*DramatiqTarget._argv(self), "--queues", QUEUE]


class BareDramatiqTarget(DramatiqTarget):
    name = "dramatiq"
    module = "bench.queue_bare"

    def _producer(self) -> dramatiq.Broker:
        return RedisBroker(url=self.redis_url)  # type: ignore[no-untyped-call]

    def _message(self, workload: str, n: int) -> dramatiq.Message[Any]:
        actor = NOOP if workload == "noop" else WRITE_ROW
        return dramatiq.Message(
            queue_name=QUEUE, actor_name=actor, args=(n,), kwargs={}, options={}
        )


#: The RabbitMQ backlog's hold queue, and the policy that releases it.
AMQP_HOLD_QUEUE = "bench-hold"
RELEASE_POLICY = "bench-release"


class RabbitmqBacklog:
    """The RabbitMQ side of a Dramatiq target: the backlog is published into a hold queue that
    dead-letters into the drained queue, and released by a ``max-length: 0`` policy on it."""

    amqp_url: str
    database_url: str
    config: Config
    client: redis.Redis
    workload: str = "noop"
    _message: Callable[[str, int], dramatiq.Message[Any]]
    _connection: Any = None  # pika.BlockingConnection, opened on first use

    def _vhost(self) -> str:
        return unquote(self.amqp_url.rsplit("/", 1)[1]) or "/"

    def _policy_url(self) -> str:
        vhost = quote(self._vhost(), safe="")
        return f"{rabbitmq.MANAGEMENT_URL}/api/policies/{vhost}/{RELEASE_POLICY}"

    def _channel(self) -> Any:
        if self._connection is None or not self._connection.is_open:
            self._connection = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
            self._amqp = self._connection.channel()
        return self._amqp

    def reset(self) -> None:
        # A new connection per measurement: the last one sat idle (no heartbeats) meanwhile.
        if getattr(self, "_connection", None) is not None and self._connection.is_open:
            try:
                self._connection.close()
            except pika.exceptions.AMQPError:
                pass
        self._connection = None
        self.client.flushdb()  # the coordination Redis (Switchboard's queue statistics)
        auth = (rabbitmq.USER, rabbitmq.PASSWORD)
        requests.delete(self._policy_url(), auth=auth, timeout=10)
        channel = self._channel()
        declare(channel, QUEUE)
        channel.queue_declare(
            AMQP_HOLD_QUEUE,
            durable=True,
            arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": QUEUE},
        )
        for name in (QUEUE, delay_queue(QUEUE), dead_queue(QUEUE), AMQP_HOLD_QUEUE):
            channel.queue_purge(name)

    def enqueue(self, workload: str, count: int) -> None:
        # Published as the stacks' producers publish (persistent messages), into the hold queue.
        self.workload = workload
        channel = self._channel()
        properties = pika.BasicProperties(delivery_mode=2)
        for n in range(count):
            body = self._message(workload, n).encode()
            channel.basic_publish("", AMQP_HOLD_QUEUE, body, properties)

    def hold(self) -> None:
        pass  # published into the hold queue already

    def release(self) -> None:
        policy = {"pattern": f"^{AMQP_HOLD_QUEUE}$", "definition": {"max-length": 0},
                  "apply-to": "queues"}  # fmt: skip
        auth = (rabbitmq.USER, rabbitmq.PASSWORD)
        requests.put(self._policy_url(), json=policy, auth=auth, timeout=10).raise_for_status()
        # The hold queue drops its messages at once; each then travels to the drained queue.
        # Until one has arrived (or been consumed) both queues can read empty.
        _wait(lambda: self._ready(AMQP_HOLD_QUEUE)[0] == 0, 30, "backlog not released")
        deadline = time.monotonic() + 2
        while self._ready(QUEUE)[0] == 0 and self._done() == 0 and time.monotonic() < deadline:
            time.sleep(0.001)

    def _done(self) -> int:
        """Messages known to be finished: rows written (the row workload); else unknown, 0."""
        if self.workload != "write_row":
            return 0
        if getattr(self, "_engine", None) is None:
            self._engine = create_engine(normalize_url(self.database_url))
        with self._engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {TABLE}")).scalar_one())

    def _ready(self, name: str) -> tuple[int, int]:
        result = self._channel().queue_declare(name, passive=True)
        return int(result.method.message_count), int(result.method.consumer_count)

    def ready(self) -> bool:
        return self._ready(QUEUE)[1] >= self.config.processes

    def remaining(self, count: int) -> int:
        # AMQP counts ready messages only. With rows the written rows say exactly what is left;
        # with no-ops, what the consumers still hold when the queue reads empty is at most
        # their prefetch (32 of 20,000 messages), acknowledged within milliseconds.
        if self.workload == "write_row":
            return count - self._done() - self.failed()
        return self._ready(QUEUE)[0] + self._ready(AMQP_HOLD_QUEUE)[0]

    def failed(self) -> int:
        return self._ready(dead_queue(QUEUE))[0]


class SwitchboardRabbitmqTarget(RabbitmqBacklog, SwitchboardTarget):
    name = "switchboard_rabbitmq"

    def _env(self) -> dict[str, str]:
        return super()._env() | {"BROKER_URL": self.amqp_url}

    def _message(self, workload: str, n: int) -> dramatiq.Message[Any]:
        # SwitchboardRabbitmqBroker's enqueue gives each message its per-enqueue id.
        message = super()._message(workload, n)
        return message.copy(options={MESSAGE_ID_OPTION: str(uuid.uuid4())})


class BareDramatiqRabbitmqTarget(RabbitmqBacklog, BareDramatiqTarget):
    name = "dramatiq_rabbitmq"

    def _env(self) -> dict[str, str]:
        return super()._env() | {"BENCH_RABBITMQ_URL": self.amqp_url}


class RQTarget(Target):
    name = "rq"
    queue_key = f"rq:queue:{QUEUE}"

    def enqueue(self, workload: str, count: int) -> None:
        queue = Queue(QUEUE, connection=self.client)
        func: Callable[[int], None] = queue_rq.noop if workload == "noop" else queue_rq.write_row
        for first in range(0, count, 1000):  # RQ's bulk API, one pipeline per thousand
            jobs = [
                Queue.prepare_data(func, args=(n,)) for n in range(first, min(first + 1000, count))
            ]
            queue.enqueue_many(jobs)

    def start(self, stack: ExitStack) -> list[int]:
        # RQ's normal worker, one process each, at its best: the job module preloaded before
        # the fork (see bench/queue_rq.py), and --quiet spares it a log line per job (which
        # Dramatiq does not write either).
        argv = [
            str(Path(sys.executable).parent / "rq"),
            "worker",
            "--url",
            self.redis_url,
            "--worker-class",
            "bench.queue_rq.PreloadedWorker",
            "--quiet",
            QUEUE,
        ]
        env = service_env(DATABASE_URL=self.database_url)
        pids = []
        for i in range(self.config.processes):
            log = self.workdir / f"rq{i}.log"
            pids.append(stack.enter_context(running(argv, env, log)).pid)
        return pids

    def ready(self) -> bool:
        return int(self.client.scard("rq:workers")) >= self.config.processes

    def remaining(self, count: int) -> int:
        done = self.client.zcard(f"rq:finished:{QUEUE}") + self.client.zcard(f"rq:failed:{QUEUE}")
        return count - int(done)

    def failed(self) -> int:
        return int(self.client.zcard(f"rq:failed:{QUEUE}"))


TARGETS: dict[str, type[Target]] = {
    "switchboard": SwitchboardTarget,
    "dramatiq": BareDramatiqTarget,
    "rq": RQTarget,
    "switchboard_all_fast": AllFastPollTarget,
    "switchboard_one_queue": DrainedQueueOnlyTarget,
    "switchboard_rabbitmq": SwitchboardRabbitmqTarget,
    "dramatiq_rabbitmq": BareDramatiqRabbitmqTarget,
}
#: ``--variants``: what Switchboard's idle consumers cost, side by side with bare Dramatiq.
VARIANTS_NAME = "queue_variants"
VARIANT_STACKS = ("switchboard", "dramatiq", "switchboard_all_fast", "switchboard_one_queue")


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} after {timeout_s:g} s")
        time.sleep(0.01)


def measure(target: Target, workload: str, count: int, db: Database, round_no: int) -> Measurement:
    target.reset()
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {TABLE}"))
    started = time.perf_counter()
    target.enqueue(workload, count)
    enqueue_s = time.perf_counter() - started
    target.hold()
    with ExitStack() as stack:
        pids = target.start(stack)
        _wait(target.ready, 60, f"{target.name} workers not ready")
        time.sleep(0.5)  # every consumer thread past its first poll
        cpu_before = sum(tree_cpu_seconds(pid) for pid in pids)
        steal = StealMeter().start()
        released = time.perf_counter()
        target.release()
        _wait(
            lambda: target.remaining(count) <= 0,
            DRAIN_TIMEOUT_S,
            f"{target.name} {workload} not drained",
        )
        seconds = time.perf_counter() - released
        steal_share = steal.stop()
        cpu = sum(tree_cpu_seconds(pid) for pid in pids) - cpu_before
        failed = target.failed()
    if workload == "write_row":

        def rows_written() -> int:
            with db.engine.connect() as conn:
                return int(conn.execute(text(f"SELECT count(*) FROM {TABLE}")).scalar_one())

        # On RabbitMQ the clock stops when no message is ready; the last few held by the
        # consumers are still being written.
        _wait(lambda: rows_written() >= count - failed, 30, f"{target.name} rows not written")
        rows = rows_written()
        if rows != count - failed:
            raise AssertionError(f"{target.name}: {rows} rows written for {count} messages")
    return Measurement(
        round=round_no,
        stack=target.name,
        workload=workload,
        messages=count,
        seconds=round(seconds, 3),
        per_s=round(count / seconds, 1),
        enqueue_per_s=round(count / enqueue_s, 1),
        worker_cpu_ms_per_message=round(cpu * 1000 / count, 3),
        failed=failed,
        steal=steal_share,
    )


@contextmanager
def _database() -> Iterator[tuple[str, Database]]:
    with temporary_postgres_database() as url:
        # Switchboard's worker runs on a migrated database; the row table is the benchmark's.
        migrate.upgrade(url)
        db = Database(url)
        with db.engine.begin() as conn:
            conn.execute(text(CREATE_TABLE))
        try:
            yield url, db
        finally:
            db.dispose()


def row_path_costs(database_url: str, rows: int = 400) -> dict[str, float]:
    """CPU ms per row written, in this process, one thread: Switchboard's way (the worker
    context's Database: a session, pre-ping on checkout) against a bare engine's, and the
    share of the pre-ping. It tells what the row costs each stack beyond the queue."""
    plain = create_engine(normalize_url(database_url))
    switchboard = Database(database_url)

    def session_way(n: int) -> None:
        with switchboard.session() as session:
            session.execute(text(INSERT_ROW), {"n": n})
            session.commit()

    def bare_way(n: int) -> None:
        with plain.begin() as conn:
            conn.execute(text(INSERT_ROW), {"n": n})

    pinged = create_engine(normalize_url(database_url), pool_pre_ping=True)

    def bare_with_ping(n: int) -> None:
        with pinged.begin() as conn:
            conn.execute(text(INSERT_ROW), {"n": n})

    variants: dict[str, Callable[[int], None]] = {
        "switchboard_session": session_way,
        "bare_engine": bare_way,
        "bare_engine_with_pre_ping": bare_with_ping,
    }
    costs = {}
    try:
        for name, write in variants.items():
            for n in range(20):  # connect and warm the statement caches first
                write(n)
            started = time.process_time()
            for n in range(rows):
                write(n)
            costs[name] = round((time.process_time() - started) * 1000 / rows, 3)
    finally:
        for engine in (plain, pinged, switchboard.engine):
            engine.dispose()
    return costs


def run(config: Config) -> dict[str, Any]:
    rows: list[Measurement] = []
    with ExitStack() as resources:
        database_url, db = resources.enter_context(_database())
        tmp = resources.enter_context(tempfile.TemporaryDirectory(prefix="bq-"))
        stacks = config.stacks
        amqp_url = ""
        if set(stacks) & set(RABBITMQ_STACKS):
            if not rabbitmq.reachable():
                raise SystemExit("RabbitMQ (with its management plugin) is needed at :5672")
            amqp_url = resources.enter_context(rabbitmq.temporary_vhost())
        targets = {
            name: TARGETS[name](BENCH_REDIS_URL, database_url, Path(tmp), config, amqp_url)
            for name in stacks
        }
        for round_no in range(config.rounds):
            first = round_no % len(stacks)
            order = stacks[first:] + stacks[:first]  # rotate who goes first
            for workload in WORKLOADS:
                for name in order:
                    m = measure(
                        targets[name], workload, config.sizes[workload][name], db, round_no + 1
                    )
                    rows.append(m)
                    print(
                        f"round {round_no + 1}  {workload:<9} {name:<21} {m.messages:>6} msgs "
                        f"{m.seconds:>7.2f} s  {m.per_s:>8.1f}/s  worker cpu "
                        f"{m.worker_cpu_ms_per_message:.3f} ms/msg  (enqueue "
                        f"{m.enqueue_per_s:.0f}/s)  steal {steal_text(m.steal)}",
                        flush=True,
                    )
        redis.Redis.from_url(BENCH_REDIS_URL).flushdb()
        row_costs = row_path_costs(database_url)
    return summarize(rows, config) | {"row_cpu_ms_in_process": row_costs}


def paired_ratios(
    rows: list[Measurement], workload: str, a: str, b: str, rounds: int
) -> list[float]:
    """Stack ``a``'s rate over ``b``'s, one ratio per round.

    The two sides of a round ran within a minute of each other, so they met the same load of
    a shared machine; rounds minutes apart did not (the same stack's rate moved by a third
    between rounds of one run). The ratio of each round, then their median, keeps that pairing;
    a ratio of the two medians would pair a fast round of one side with a slow one of the other.
    """
    rate = {(r.round, r.stack): r.per_s for r in rows if r.workload == workload}
    return [rate[(n, a)] / rate[(n, b)] for n in range(1, rounds + 1)]


def summarize(rows: list[Measurement], config: Config) -> dict[str, Any]:
    medians: dict[str, dict[str, dict[str, Any]]] = {}
    for workload in WORKLOADS:
        medians[workload] = {}
        for stack in config.stacks:
            mine = [r for r in rows if r.workload == workload and r.stack == stack]
            medians[workload][stack] = {
                "per_s": round(median([r.per_s for r in mine]), 1),
                "worker_cpu_ms_per_message": round(
                    median([r.worker_cpu_ms_per_message for r in mine]), 3
                ),
                "enqueue_per_s": round(median([r.enqueue_per_s for r in mine]), 1),
                "messages": mine[0].messages,
            }
        pairs = [
            (stack, "dramatiq_rabbitmq" if stack.endswith("_rabbitmq") else "dramatiq")
            for stack in config.stacks
            if stack.startswith("switchboard")
        ]
        if "rq" in config.stacks:
            pairs.append(("switchboard", "rq"))
        per_round = {
            f"{a}_vs_{b}": paired_ratios(rows, workload, a, b, config.rounds) for a, b in pairs
        }
        medians[workload]["ratios"] = {
            key: round(median(values), 3) for key, values in per_round.items()
        }
        medians[workload]["ratios_per_round"] = {
            key: [round(v, 3) for v in values] for key, values in per_round.items()
        }
    variants = config.stacks == VARIANT_STACKS
    return {
        "benchmark": VARIANTS_NAME if variants else NAME,
        "command": VARIANTS_COMMAND if variants else COMMAND,
        "config": asdict(config),
        "switchboard_middleware": switchboard_middleware(),
        "medians": medians,
        "targets": {
            "switchboard_vs_dramatiq": 0.8,
            "switchboard_vs_rq": 5.0,
            "switchboard_rabbitmq_vs_dramatiq_rabbitmq": 0.8,
        },
        "measurements": [asdict(r) for r in rows],
        "cores": os.cpu_count(),
    }


VARIANT_LABELS = {
    "switchboard": "Switchboard as configured (urgent queues' idle consumers blocked until an "
    "enqueue wakes them; background and delay queues poll every `WORKER_BACKGROUND_POLL_MS`, 1 s)",
    "dramatiq": "bare Dramatiq",
    "switchboard_all_fast": "Switchboard with the background and delay queues' idle consumers "
    "polling every 100 ms (before; `WORKER_BACKGROUND_POLL_MS=100`)",
    "switchboard_one_queue": "Switchboard consuming only the drained queue, as bare Dramatiq "
    "does (`--queues default`)",
}


def _variants_text() -> str:
    """The variants' table, from their own run (``make bench-queue-variants``), if any."""
    path = RESULTS / f"{VARIANTS_NAME}.json"
    if not path.exists():
        return f"(`{VARIANTS_COMMAND}` has not been run: no variants to show.)"
    result = json.loads(path.read_text())
    m = result["medians"]
    rows = [
        [
            VARIANT_LABELS[stack],
            *(
                f"{num(m[w][stack]['per_s'], 0)} ({m[w][stack]['worker_cpu_ms_per_message']:.3f})"
                for w in WORKLOADS
            ),
            *(
                f"**{m[w]['ratios'][f'{stack}_vs_dramatiq']:.2f}x**" if stack != "dramatiq" else ""
                for w in WORKLOADS
            ),
        ]
        for stack in result["config"]["stacks"]
    ]
    c = result["config"]
    return f"""What Switchboard's idle consumers cost: `{VARIANTS_COMMAND}` (= `python -m
bench.queue_throughput --variants`, measured {result["measured_at"]}) runs Switchboard's
worker three ways beside bare Dramatiq, alternating, {c["rounds"]} rounds, medians; messages/s
(worker CPU ms per message):

{
        table(
            [
                "stack",
                "no-op /s (CPU ms)",
                "one row /s (CPU ms)",
                "no-op ÷ Dramatiq",
                "one row ÷ Dramatiq",
            ],
            rows,
            "lrrrr",
        )
    }

Dramatiq gives every consumer thread the same idle poll, and a worker process has one per
queue and one per delay queue: 14 here against bare Dramatiq's 2. At 100 ms each idle one
makes 10 to 20 Lua calls a second, and on 2 cores that CPU is taken from the messages (most
visibly from row-writing ones, which leave the machine busier). Switchboard's broker
(`SwitchboardRedisBroker` in `libs/queueops/broker.py`) gives the background queues and every
delay queue `WORKER_BACKGROUND_POLL_MS` (1 s): a delay queue's consumer takes a message as soon
as it sees it and holds it until it is due, so only messages due within a second of being sent
wait longer, and background work starts within a second. What is left between Switchboard and
bare Dramatiq with one queue consumed is the middleware and the session (above).

Waking consumers. The urgent queues (`high`, `default`) polled every 100 ms at most
(`WORKER_POLL_MS`): a message sent to an idle worker waited for the poll, and every idle
consumer of every process made 10 to 20 Lua calls a second. Their consumers now block on the
queue's wake list (`BLPOP`, `libs/queueops/broker_adapter/redis_wake.py`) for up to
`WORKER_IDLE_BLOCK_MS` (2 s), and every path that makes a message ready on the queue pushes a
token after it in the same round trip (an enqueue or a batch, a due delayed message moved to
its queue, a dead-letter retry, a stopping worker's requeue), trimmed to 32 tokens so a queue
with no consumer keeps no more. A token pushed before the consumer blocks stays on the list,
so no wake is lost. Each fetch cuts the wake list to as many tokens as messages are still
listed (a script in the fetch's round trip), so the tokens of messages a busy consumer fetched
without waking do not each cost an idle one an empty fetch, and a consumer whose fetch left
nothing listed blocks without fetching again. Taking tokens before the fetch and giving them
back when it filled its room, tried first, cost a second round trip per fetch under a backlog:
0.52 to 0.70 ms of worker CPU per row message against 0.41 to 0.49 on main. Measured back to
back against main (2026-12-06; the table above predates the waking consumers): an idle
`switchboard worker` (2 processes x 8 threads, every queue) used 20 to 25 ms of CPU a second
against 13 to 15.5 woken (10.5 with `WORKER_POLL_MS=1000` as well, which wakes the worker
threads less often); a request to an idle worker reached its actor at p50 23 to 30 ms
polling against 6.6 to 7.1 ms woken (`make bench-latency`, light load); the
variants' no-op and row throughput stayed within the rounds' spread (rows 1.24x of Dramatiq
against 1.22x on main). The dialer keeps its consumers busy, so polling cost it little: over
pairs of `python -m bench.dialer --only default`, the runs' dispatch gap p50 had a median of 25
ms against 41 ms on main (11 and 13 runs), and p99, utilization (0.77 to 0.86 against 0.79 to
0.84) and CPU per call stayed within the spread of runs."""


def switchboard_middleware() -> list[str]:
    """The worker's middleware, in order, as build_broker assembles it for `switchboard worker`."""
    settings = Settings(service_role="worker", redis_url=BENCH_REDIS_URL)
    names = [type(m).__name__ for m in build_middleware(settings, worker=True, prometheus=False)]
    # The Prometheus middleware is built only in a booting worker (it needs its metrics files).
    names.insert(names.index("WorkerContextMiddleware") + 1, "BatchedPrometheus")
    return names


def checks(result: dict[str, Any]) -> list[Check]:
    out = []
    for workload, label in (("noop", "no-op"), ("write_row", "one row each")):
        ratios = result["medians"][workload]["ratios"]
        for key, other in (
            ("switchboard_vs_dramatiq", "bare Dramatiq"),
            ("switchboard_vs_rq", "RQ"),
        ):
            target = result["targets"][key]
            out.append(
                Check(
                    f"Queue throughput, {label}: Switchboard vs {other}",
                    f">= {target:g}x",
                    f"{ratios[key]:.2f}x" if key.endswith("dramatiq") else f"{ratios[key]:.0f}x",
                    ratios[key] >= target,
                )
            )
        key = "switchboard_rabbitmq_vs_dramatiq_rabbitmq"
        if key in ratios:
            target = result["targets"][key]
            out.append(
                Check(
                    f"Queue throughput on RabbitMQ, {label}: Switchboard vs bare Dramatiq",
                    f">= {target:g}x",
                    f"{ratios[key]:.2f}x",
                    ratios[key] >= target,
                )
            )
    return out


def _rabbitmq_text(result: dict[str, Any]) -> str:
    """The RabbitMQ pair's table, when the run measured it."""
    m = result["medians"]
    if "switchboard_rabbitmq" not in m["noop"]:
        return "(This run did not measure the stacks on RabbitMQ.)"
    labels = {"noop": "no-op", "write_row": "one row written each"}
    cpu = "worker_cpu_ms_per_message"
    rows = [
        [
            labels[w],
            f"{m[w]['switchboard_rabbitmq']['messages']:,}",
            num(m[w]["switchboard_rabbitmq"]["per_s"], 0),
            num(m[w]["dramatiq_rabbitmq"]["per_s"], 0),
            f"**{m[w]['ratios']['switchboard_rabbitmq_vs_dramatiq_rabbitmq']:.2f}x**",
            f"{m[w]['switchboard_rabbitmq'][cpu]:.3f}",
            f"{m[w]['dramatiq_rabbitmq'][cpu]:.3f}",
            num(m[w]["switchboard"]["per_s"], 0) if "switchboard" in m[w] else "",
        ]
        for w in WORKLOADS
    ]
    per_round = [
        [
            labels[w],
            *(f"{r:.2f}x" for r in m[w]["ratios_per_round"][
                "switchboard_rabbitmq_vs_dramatiq_rabbitmq"]),
        ]
        for w in WORKLOADS
    ]  # fmt: skip
    rounds = max(len(r) - 1 for r in per_round)
    return f"""### On RabbitMQ

The same two Dramatiq stacks with RabbitMQ as the broker, in the same run and the same rounds
(a virtual host of the machine's RabbitMQ 3.10, made for the run): Switchboard's worker with
`BROKER_URL=amqp://…` (its `SwitchboardRabbitmqBroker`: publisher confirms, heartbeats, a
per-enqueue id; Redis then only holds the coordination state and the queue statistics) and
bare Dramatiq's `RabbitmqBroker(url=…)` with its defaults. Both use Dramatiq's prefetch of 2
messages per thread. The backlog waits in a hold queue that dead-letters into the drained one,
and a `max-length: 0` policy on the hold queue releases it all at once; the clock stops when
every row is written (rows), or when no message is left ready (no-ops: what the consumers
still hold then, at most their prefetch of 32 among 20,000, is acknowledged within
milliseconds). AMQP publishes into the hold queue are the benchmark's own, so the enqueue
rate is not compared here.

{
        table(
            [
                "workload",
                "messages",
                "Switchboard on RabbitMQ /s",
                "bare Dramatiq on RabbitMQ /s",
                "Switchboard ÷ Dramatiq",
                "CPU ms/msg: Switchboard",
                "CPU ms/msg: Dramatiq",
                "(Switchboard on Redis /s)",
            ],
            rows,
            "lrrrrrrr",
        )
    }

Each round's ratio on RabbitMQ:

{table(["workload", *(f"round {i + 1}" for i in range(rounds))], per_round, "l" + "r" * rounds)}

What the profile showed (py-spy on one worker process of each stack draining 60,000 no-ops
from RabbitMQ, `--subprocesses`, 8 s): in both, a worker thread's time per message is almost
all the acknowledgement (`_RabbitmqConsumer.ack`: pika's `add_callback_threadsafe`, which
wakes the consumer's I/O loop through a pipe, then one AMQP frame and one `send` per ack) and
the consumer thread's I/O loop; Switchboard's middleware stays under 1 % of the samples. Two
changes came from it and from the CPU figures: an idle RabbitMQ consumer wakes at its idle
timeout although messages are pushed to it, and Switchboard's worker has 12 consumers per
process (every queue and delay queue) against bare Dramatiq's 2, so every RabbitMQ consumer
gets the background poll (`WORKER_BACKGROUND_POLL_MS`; a push-based consumer's timeout delays
no message); and a prefetch of one message per thread (tried first) cost about a quarter more
CPU per no-op message than Dramatiq's two per thread (0.234 against 0.186 ms in the same
minute), since a thread that finishes waits for the next message to cross the network. What
is left between the two stacks is within the spread of rounds on a shared machine."""


def _steal_per_round(measurements: list[dict[str, Any]], workload: str) -> list[str]:
    """Per round, the most steal any stack's measurement of ``workload`` met (results from
    before steal was recorded: none)."""
    by_round: dict[int, list[float]] = {}
    for x in measurements:
        if x["workload"] == workload and x.get("steal") is not None and "round" in x:
            by_round.setdefault(x["round"], []).append(x["steal"])
    return [steal_text(max(by_round[n])) for n in sorted(by_round)]


def markdown(result: dict[str, Any]) -> str:
    """The docs/benchmarks.md section, figures from ``result`` (queue_throughput.json)."""
    c, m = result["config"], result["medians"]
    names = {"switchboard": "Switchboard", "dramatiq": "bare Dramatiq", "rq": "RQ"}
    labels = {"noop": "no-op", "write_row": "one row written each"}
    rows = [
        [
            labels[w],
            " / ".join(f"{m[w][s]['messages']:,}" for s in STACKS),
            *(num(m[w][s]["per_s"], 0) for s in STACKS),
            f"**{m[w]['ratios']['switchboard_vs_dramatiq']:.2f}x**",
            f"**{m[w]['ratios']['switchboard_vs_rq']:.0f}x**",
        ]
        for w in WORKLOADS
    ]
    cpu_rows = [
        [
            labels[w],
            *(f"{m[w][s]['worker_cpu_ms_per_message']:.3f}" for s in STACKS),
            *(num(m[w][s]["enqueue_per_s"], 0) for s in STACKS),
        ]
        for w in WORKLOADS
    ]
    per_round = []
    for workload in WORKLOADS:
        label = labels[workload]
        for stack in STACKS:
            rates = [
                num(x["per_s"], 0)
                for x in result["measurements"]
                if x["workload"] == workload and x["stack"] == stack
            ]
            per_round.append([label, names[stack], *rates])
        paired = m[workload].get("ratios_per_round", {}).get("switchboard_vs_dramatiq")
        if paired:
            per_round.append([label, "Switchboard ÷ bare Dramatiq", *(f"{r:.2f}x" for r in paired)])
        steals = _steal_per_round(result["measurements"], workload)
        if steals:
            per_round.append([label, "steal (most of the round's stacks)", *steals])
    rounds = max(len(r) - 2 for r in per_round)
    checks_table = table(
        ["target", "wanted", "measured", ""],
        [[k.what, k.target, k.measured, k.verdict] for k in checks(result)],
    )
    noop, rows_ = m["noop"], m["write_row"]
    cpu = "worker_cpu_ms_per_message"
    extra_cpu = noop["switchboard"][cpu] - noop["dramatiq"][cpu]
    row_extra = rows_["switchboard"][cpu] - rows_["dramatiq"][cpu]
    row_cpu = result.get("row_cpu_ms_in_process", {})
    only = c.get("switchboard_queues") or ()
    consumed = (
        f"consuming only {', '.join(only)} (`--switchboard-queues`, not production's setting)"
        if only
        else "every queue consumed (6 queues and their delay queues, as in production)"
    )
    reruns = _variants_text()
    on_rabbitmq = _rabbitmq_text(result)
    history = history_table("queue_throughput")
    return f"""## Queue throughput

`{result["command"]}` (= `.venv/bin/python -m bench.queue_throughput`): one backlog drained by
three stacks on the same Redis (database 12, flushed before every measurement) and PostgreSQL,
{c["processes"]} worker processes each:

- **Switchboard**: what `switchboard worker` runs (`services/worker/main.py`: settings, logging,
  the broker with its middleware list, every real actor bound through its contract) plus two
  benchmark contracts, `bench.noop` and `bench.write_row`, implemented with `@implements`; the
  row is written through the worker context's database session (`bench/queue_switchboard.py`).
  Messages are built with `CONTRACT.message()`. {c["processes"]} processes x {c["threads"]}
  threads, {consumed}. Middleware: {", ".join(result["switchboard_middleware"])}.
- **bare Dramatiq**: a `RedisBroker` with Dramatiq's default middleware, two `@dramatiq.actor`
  functions and a plain SQLAlchemy engine (`bench/queue_bare.py`); {c["processes"]} x
  {c["threads"]}.
- **RQ** (what the replaced systems used): {c["processes"]} plain `rq worker` processes. RQ has no
  threads (each worker runs one job at a time, in a work horse forked per job), so the process
  count is what is matched. RQ is measured at its best: the job module is imported before the
  fork (RQ's own performance advice, `--worker-class bench.queue_rq.PreloadedWorker`) and
  `--quiet` spares it a log line per job.

Each measurement enqueues the backlog with the stack's producer API while no worker runs, moves
the queue's list aside, starts the workers, and when they are idle renames the list back: the
clock runs from that release to the last message acknowledged (Dramatiq: its message hash is
empty; RQ: every job in the finished registry), so neither enqueueing nor worker start-up is
in the figure. Both Dramatiq stacks idle-poll every 100 ms at most (Switchboard's
`WORKER_POLL_MS`), so the release is seen equally soon. The stacks alternate in each round, the
first one rotating; {rounds} rounds. Rates are medians over the rounds; a ratio is the median
of the rounds' own ratios, since the two sides of a round met the same minute of a shared machine
and rounds did not (a stack's rate moves by up to a third between rounds). RQ drains
{m["noop"]["rq"]["messages"]:,} jobs of each workload instead of
{m["noop"]["switchboard"]["messages"]:,} and {m["write_row"]["switchboard"]["messages"]:,}: each
job costs it a fork whatever the backlog, so its rate does not depend on the count, and the full
counts would take most of the 15 minutes `make bench` may use.

{
        table(
            [
                "workload",
                "messages (Switchboard / Dramatiq / RQ)",
                "Switchboard /s",
                "bare Dramatiq /s",
                "RQ /s",
                "Switchboard ÷ Dramatiq",
                "Switchboard ÷ RQ",
            ],
            rows,
            "lrrrrrr",
        )
    }

{checks_table}

Worker CPU per message (all worker processes, ms; RQ's includes its forked horses) and, for
reference, the producers' enqueue rate (one process, messages/s):

{
        table(
            [
                "workload",
                "Switchboard",
                "bare Dramatiq",
                "RQ",
                "enqueue: Switchboard",
                "enqueue: Dramatiq",
                "enqueue: RQ",
            ],
            cpu_rows,
            "lrrrrrr",
        )
    }

Every round (messages/s), its ratio, and the share of the machine's CPU time its host gave other
virtual machines while a backlog drained (steal), to show the spread on a shared machine:

{
        table(
            ["workload", "stack", *(f"round {i + 1}" for i in range(rounds))],
            per_round,
            "ll" + "r" * rounds,
        )
    }

**Where the time goes.** A no-op message costs Switchboard's workers {extra_cpu:.3f} ms of CPU
more than bare Dramatiq's ({noop["switchboard"]["worker_cpu_ms_per_message"]:.3f} against
{noop["dramatiq"]["worker_cpu_ms_per_message"]:.3f}). Both spend most of a message in Redis
round trips (the fetch, and the acknowledgement: a Lua script call per message); what
Switchboard adds is its middleware (six more, each called for every signal of every message:
Dramatiq's Prometheus metrics, the request id carried into logs, `CurrentMessage`, the worker
context, heartbeats, queue statistics) and the idle consumers of its five other queues and
their delay queues (ten more threads per process, each polling Redis; see the variants below).
A row costs Switchboard's worker {row_extra:.3f} ms of CPU more than bare Dramatiq's
({rows_["switchboard"]["worker_cpu_ms_per_message"]:.3f} against
{rows_["dramatiq"]["worker_cpu_ms_per_message"]:.3f}): measured in one process, writing a row
the worker context's way (an ORM session, a pooled connection, pinged if it sat idle) takes
{row_cpu.get("switchboard_session", 0):.3f} ms of CPU, a bare engine's
{row_cpu.get("bare_engine", 0):.3f} ms, and {row_cpu.get("bare_engine_with_pre_ping", 0):.3f}
ms with SQLAlchemy's ping on every checkout. Switchboard pings a connection only after it sat
idle for 0.5 s (a `SELECT 1` round trip that lets a process survive a PostgreSQL restart
without failing the next message), so a busy worker skips it; the session is kept on purpose.
RQ's rate is set by its fork per job, and with rows by a new PostgreSQL connection in every
forked horse.

{on_rabbitmq}

{reruns}

What changed the figures while building it (medians of 3 rounds each, measured then on the
same shared machine; a blank was not measured):

{history}
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.queue_throughput", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=2, help="worker processes, every stack")
    parser.add_argument("--threads", type=int, default=8, help="threads per Dramatiq process")
    parser.add_argument("--noop", type=int, default=20_000, help="no-op messages")
    parser.add_argument("--write-row", type=int, default=2_000, help="row-writing messages")
    # RQ forks once per job whatever the backlog, so a smaller count measures the same rate
    # and keeps `make bench` within its 15 minutes.
    parser.add_argument("--rq", type=int, default=500, help="at most this many per workload")
    parser.add_argument(
        "--switchboard-queues",
        default="",
        help="comma-separated queues for Switchboard's worker (default: all, as in production)",
    )
    parser.add_argument(
        "--variants",
        action="store_true",
        help="Switchboard as configured, with every idle consumer polling fast, and consuming "
        f"only the drained queue, against bare Dramatiq (writes {VARIANTS_NAME}.json)",
    )
    parser.add_argument("--quick", action="store_true", help="1 round, a tenth of the messages")
    parser.add_argument(
        "--stacks", default="", help="comma-separated stacks to run (default: every one)"
    )
    args = parser.parse_args()
    exit_cleanly_on_sigterm()
    if args.quick:
        args.rounds, args.noop, args.write_row = 1, args.noop // 10, args.write_row // 10
        args.rq //= 5
    stacks = VARIANT_STACKS if args.variants else (*STACKS, *RABBITMQ_STACKS)
    if args.stacks:
        stacks = tuple(name for name in args.stacks.split(",") if name)
    sizes = {
        workload: {stack: min(args.rq, count) if stack == "rq" else count for stack in stacks}
        for workload, count in (("noop", args.noop), ("write_row", args.write_row))
    }
    queues = tuple(q for q in args.switchboard_queues.split(",") if q)
    config = Config(args.processes, args.threads, args.rounds, sizes, queues, stacks)
    print(
        f"queue throughput, {args.processes} processes x {args.threads} threads, "
        f"{args.rounds} rounds, {os.cpu_count()} cores ({COMMAND})",
        flush=True,
    )
    result = run(config)
    for workload in WORKLOADS:
        m = result["medians"][workload]
        rates = ", ".join(f"{stack} {m[stack]['per_s']}/s" for stack in stacks)
        ratios = ", ".join(f"{name} {value}" for name, value in m["ratios"].items())
        print(f"{workload}: {rates}; {ratios}")
    write_result(result["benchmark"], result)


if __name__ == "__main__":
    main()
