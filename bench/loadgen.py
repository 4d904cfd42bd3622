"""A small HTTP/1.1 load generator for loopback benchmarks (asyncio, keep-alive connections).

Requests are prepared in advance as raw bytes (signatures included), so the generator's own
cost per request is a write and a response parse: it stays far from a core even at the bare
endpoint's rate, and each run reports the CPU it used so a reader can check. Two modes:

- closed loop (``saturate``): ``connections`` clients send back to back until the requests or
  the time run out; the completed requests per second is the server's capacity.
- open loop (``paced``): requests leave on a fixed schedule whatever the answers do, and each
  latency runs from the request's scheduled time (a slow answer cannot hide the requests it
  delayed: no coordinated omission).

Every run is bounded in count and in time, and only ever targets the given loopback port.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

#: A request that has not been answered after this long counts as an error.
REQUEST_TIMEOUT_S = 10.0


@dataclass
class RunResult:
    sent: int = 0
    completed: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    #: With ``keep_bodies``: (scheduled wall-clock time, status, body) per answered request.
    bodies: list[tuple[float, int, bytes]] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0

    @property
    def per_s(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    @property
    def cpu_share(self) -> float:
        """The generator's CPU as a fraction of one core over the run."""
        return self.cpu_seconds / self.seconds if self.seconds else 0.0


class Connection:
    """One keep-alive connection; reopened when the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(raw)
        status, body, close = await read_response(self.reader)
        if close:
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """The status, the body, and whether the server will close the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, chunked, close = 0, False, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and b"close" in value.lower():
            close = True
    body = b""
    if chunked:
        while size := int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readuntil(b"\r\n")
    elif length and status not in (204, 304):
        body = await reader.readexactly(length)
    return status, body, close


def _record(result: RunResult, status: int | None, latency_s: float) -> None:
    if status is None:
        result.errors += 1
        return
    result.completed += 1
    result.statuses[status] = result.statuses.get(status, 0) + 1
    result.latencies_ms.append(latency_s * 1000)


async def _one(conn: Connection, raw: bytes) -> tuple[int | None, bytes]:
    try:
        return await asyncio.wait_for(conn.request(raw), REQUEST_TIMEOUT_S)
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
        conn.close()
        return None, b""


async def saturate(
    host: str, port: int, requests: list[bytes], connections: int, max_seconds: float
) -> RunResult:
    """Closed loop: every connection sends its next request as soon as the last is answered."""
    result = RunResult()
    queue = iter(requests)
    started = time.perf_counter()
    deadline = started + max_seconds

    async def client() -> None:
        conn = Connection(host, port)
        try:
            for raw in queue:
                if time.perf_counter() >= deadline:
                    return
                result.sent += 1
                sent_at = time.perf_counter()
                status, _ = await _one(conn, raw)
                _record(result, status, time.perf_counter() - sent_at)
        finally:
            conn.close()

    cpu = time.process_time()
    await asyncio.gather(*(client() for _ in range(connections)))
    result.seconds = time.perf_counter() - started
    result.cpu_seconds = time.process_time() - cpu
    return result


async def paced(
    host: str,
    port: int,
    requests: list[bytes],
    rate_per_s: float,
    connections: int,
    keep_bodies: bool = False,
) -> RunResult:
    """Open loop: request i leaves at start + i / rate on a free connection (more are opened
    when all are busy); its latency counts from that scheduled instant. ``keep_bodies`` keeps
    each answer with its scheduled wall-clock time (to match it with what it caused)."""
    result = RunResult()
    idle: list[Connection] = [Connection(host, port) for _ in range(connections)]
    opened = list(idle)
    tasks: set[asyncio.Task[None]] = set()

    async def send(raw: bytes, due: float, due_wall: float) -> None:
        conn = idle.pop() if idle else Connection(host, port)
        if conn not in opened:
            opened.append(conn)
        status, body = await _one(conn, raw)
        _record(result, status, time.perf_counter() - due)
        if keep_bodies and status is not None:
            result.bodies.append((due_wall, status, body))
        idle.append(conn)

    cpu = time.process_time()
    started, started_wall = time.perf_counter(), time.time()
    for i, raw in enumerate(requests):
        due = started + i / rate_per_s
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        result.sent += 1
        task = asyncio.create_task(send(raw, due, started_wall + i / rate_per_s))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT_S)
    result.seconds = time.perf_counter() - started
    result.cpu_seconds = time.process_time() - cpu
    for conn in opened:
        conn.close()
    return result


def run_saturate(
    host: str, port: int, requests: list[bytes], connections: int, max_seconds: float
) -> RunResult:
    """Entry point for a separate process (multiprocessing)."""
    return asyncio.run(saturate(host, port, requests, connections, max_seconds))


def run_paced(
    host: str,
    port: int,
    requests: list[bytes],
    rate_per_s: float,
    connections: int,
    keep_bodies: bool = False,
) -> RunResult:
    return asyncio.run(paced(host, port, requests, rate_per_s, connections, keep_bodies))
