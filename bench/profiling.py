"""Where the CPU goes while a benchmark runs: per process group, and inside Python by package.

- ``postgres_backends`` finds the PostgreSQL server processes serving one database, so their CPU
  can be charged to the benchmark that uses it (other work on the machine is not counted).
- ``record``/``by_package`` sample a process tree with py-spy (only threads holding the GIL,
  so the shares are of Python CPU time) and group the samples by the package of the innermost
  frame: "sqlalchemy 31 %, psycopg 12 %, ...".
- ``by_step`` groups the same samples by the step of a request they were taken in (the
  innermost frame naming one of the given functions): "lock the call 18 %, ...".
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psutil
from sqlalchemy import Engine, text

from bench.support import tree_cpu_seconds

_FRAME = re.compile(r"\((?P<file>[^:()]+):\d+\)$")
_FUNCTION = re.compile(r"^(?P<function>[^ ]+) \((?P<file>[^:()]+):\d+\)$")


def postgres_backends(engine: Engine) -> list[int]:
    """Pids of the server processes connected to ``engine``'s database (but this one)."""
    with engine.connect() as conn:
        rows = (
            conn.execute(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid()"
                )
            )
            .scalars()
            .all()
        )
    return [int(pid) for pid in rows]


def cpu_of(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            out[pid] = times.user + times.system
        except psutil.Error:
            pass
    return out


class CpuMeter:
    """CPU seconds used between ``start`` and ``stop`` by named process trees, and by the
    PostgreSQL backends of one database (those that appear meanwhile are counted whole)."""

    def __init__(self, trees: dict[str, int], engine: Engine | None = None) -> None:
        self.trees, self.engine = trees, engine
        self.before: dict[str, float] = {}
        self.backends: dict[int, float] = {}

    def start(self) -> None:
        self.before = {name: tree_cpu_seconds(pid) for name, pid in self.trees.items()}
        if self.engine is not None:
            self.backends = cpu_of(postgres_backends(self.engine))

    def stop(self) -> dict[str, float]:
        used = {name: tree_cpu_seconds(pid) - self.before[name] for name, pid in self.trees.items()}
        if self.engine is not None:
            now = cpu_of(postgres_backends(self.engine))
            used["postgres"] = sum(v - self.backends.get(pid, 0.0) for pid, v in now.items())
        return used


def py_spy() -> str | None:
    candidate = Path(sys.executable).parent / "py-spy"
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


def record(pid: int, seconds: int, out: Path) -> subprocess.Popen[bytes] | None:
    """Start sampling ``pid`` and its children for ``seconds``; None without py-spy."""
    binary = py_spy()
    if binary is None:
        return None
    argv = [
        binary,
        "record",
        "--gil",
        "--subprocesses",
        "--full-filenames",
        "--rate",
        "200",
        "--duration",
        str(seconds),
        "--format",
        "raw",
        "--output",
        str(out),
        "--pid",
        str(pid),
    ]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def package_of(path: str) -> str:
    """'…/site-packages/sqlalchemy/orm/session.py' -> 'sqlalchemy'; repository files by their
    top two directories ('libs/common'); the standard library as 'stdlib'."""
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    for top in ("libs/", "services/", "bench/", "simulators/"):
        if f"/{top}" in path or path.startswith(top):
            rest = top + path.split(f"/{top}", 1)[-1] if f"/{top}" in path else path
            return "/".join(rest.split("/")[:2]).removesuffix(".py")
    return "stdlib" if "python3" in path or path.startswith("<frozen") else "other"


def by_package(raw: Path, top: int = 10) -> list[tuple[str, float]]:
    """Shares of the samples by the package of their innermost frame, largest first."""
    counts: Counter[str] = Counter()
    for stack, n in _samples(raw):
        match = _FRAME.search(stack[-1])
        counts[package_of(match["file"]) if match else "other"] += n
    total = sum(counts.values())
    return (
        [(name, round(count / total, 3)) for name, count in counts.most_common(top)]
        if total
        else []
    )


def by_step(raw: Path, steps: dict[str, tuple[str, str]]) -> list[tuple[str, float]]:
    """Shares of the samples by step: ``steps`` maps a label to (function name, a part of its
    file's path); a sample counts for the innermost frame that matches one, else "other"
    (the server, the framework, idle threads holding the GIL). In the order of ``steps``."""
    counts: Counter[str] = Counter()
    for stack, n in _samples(raw):
        counts[_step_of(stack, steps)] += n
    total = sum(counts.values())
    if not total:
        return []
    return [(label, round(counts[label] / total, 3)) for label in [*steps, "other"]]


def _step_of(frames: list[str], steps: dict[str, tuple[str, str]]) -> str:
    for frame in reversed(frames):
        match = _FUNCTION.match(frame.strip())
        if match is None:
            continue
        for label, (function, path) in steps.items():
            # py-spy names frames by qualified name ("Session.commit"); steps by function.
            if match["function"].rsplit(".", 1)[-1] == function and path in match["file"]:
                return label
    return "other"


def _samples(raw: Path) -> Iterator[tuple[list[str], int]]:
    """py-spy's raw output: each line a stack (frames outermost first, ';'-separated) and how
    many samples it had. Nothing when the file is missing (py-spy did not run)."""
    if not raw.exists():
        return
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if n.isdigit() and stack:
            yield stack.split(";"), int(n)
