"""Helpers the comparison benchmarks share: where results go, which Redis they use, percentiles,
the CPU a process tree used (to show a load generator is not the bottleneck), and the CPU the
virtual machine's host took from this one (steal)."""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

RESULTS = Path(__file__).resolve().parent / "results"
#: Earlier runs and what changed the figures, as data the report renders (not Python constants).
HISTORY_DIR = Path(__file__).resolve().parent.parent / "docs" / "bench-history"

#: A Redis database of its own, flushed by each benchmark: never the tests' database (9).
BENCH_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")


def exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM (``timeout``, a CI limit) into SystemExit, so every ``with`` block unwinds:
    the workers, servers and temporary databases a benchmark started are stopped and dropped
    instead of outliving it (a stray worker would steal the next run's messages)."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def write_result(name: str, result: dict[str, Any]) -> Path:
    """bench/results/<name>.json, stamped with when it was measured."""
    result = {**result, "measured_at": datetime.now(UTC).isoformat(timespec="seconds")}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants: the live ones, and those already
    reaped (counted in their parent's ``children_*`` times, e.g. RQ's forked work horses)."""
    total = 0.0
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
        except psutil.Error:
            pass
    return total


PROC_STAT = Path("/proc/stat")


def _cpu_jiffies(stat: Path) -> tuple[int, int] | None:
    """(steal, total) CPU time of every core since boot, from /proc/stat; None off Linux."""
    try:
        fields = stat.read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal [guest guest_nice: inside user/nice]
    times = [int(v) for v in fields[1:9]]
    return (times[7], sum(times)) if len(times) == 8 else None


class StealMeter:
    """The share of CPU time the hypervisor gave to other guests between ``start`` and
    ``stop``: on a shared virtual machine a phase with steal ran on less machine than its
    figures suggest, and its tail latencies show it first."""

    def __init__(self, stat: Path = PROC_STAT) -> None:
        self.stat = stat
        self._at_start: tuple[int, int] | None = None

    def start(self) -> StealMeter:
        self._at_start = _cpu_jiffies(self.stat)
        return self

    def stop(self) -> float | None:
        """Steal as a fraction of all CPU time (0..1); None where it cannot be read."""
        now = _cpu_jiffies(self.stat)
        if self._at_start is None or now is None:
            return None
        steal, total = now[0] - self._at_start[0], now[1] - self._at_start[1]
        return round(steal / total, 3) if total > 0 else 0.0


def steal_text(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.0f} %"


@dataclass(frozen=True)
class Check:
    """A target from an issue, next to what was measured."""

    what: str
    target: str
    measured: str
    passed: bool

    @property
    def verdict(self) -> str:
        return "**PASS**" if self.passed else "**MISS**"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> str:
    """A Markdown table; ``align`` has one letter per column (l or r), left by default."""
    marks = ["---:" if a == "r" else "---" for a in align.ljust(len(header), "l")]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def history(name: str) -> dict[str, Any]:
    """docs/bench-history/<name>.json: ``columns``, ``rows`` (and ``align``) of a benchmark's
    history table, plus whatever else it keeps from earlier runs."""
    data: dict[str, Any] = json.loads((HISTORY_DIR / f"{name}.json").read_text())
    return data


def history_table(name: str) -> str:
    """A benchmark's history as a Markdown table."""
    data = history(name)
    return table(data["columns"], data["rows"], data.get("align", ""))


def num(value: float, digits: int = 1) -> str:
    """Thousands separated, fixed decimals: 20000 -> 20,000; 0.4567 (2) -> 0.46."""
    return f"{value:,.{digits}f}"
