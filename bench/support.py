"""Helpers the comparison benchmarks share: where results go, which Redis they use, percentiles,
and the CPU a process tree used (to show a load generator is not the bottleneck)."""

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


def num(value: float, digits: int = 1) -> str:
    """Thousands separated, fixed decimals: 20000 -> 20,000; 0.4567 (2) -> 0.46."""
    return f"{value:,.{digits}f}"
