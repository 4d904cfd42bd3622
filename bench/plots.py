"""The PNG figures of docs/benchmarks.md, one function per benchmark, from its result JSON.

matplotlib with the Agg backend (no display); files are written without a timestamp in their
metadata, so the same figures give the same bytes and regenerating the docs adds no noise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

SWITCHBOARD = "#2a6fdb"
OTHERS = ("#9aa5b1", "#d98c3f", "#6b8f71")


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return path


def _bars(ax: Axes, groups: Sequence[str], series: Mapping[str, Sequence[float]], fmt: str) -> None:
    """Grouped bars, Switchboard first and in blue, each bar labelled with its value."""
    width = 0.8 / len(series)
    colors = iter(OTHERS)
    for i, (name, values) in enumerate(series.items()):
        color = SWITCHBOARD if name.lower().startswith("switchboard") else next(colors)
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        bars = ax.bar(xs, values, width, label=name, color=color)
        ax.bar_label(bars, labels=[fmt.format(v) for v in values], fontsize=7, padding=2)
    ax.set_xticks(range(len(groups)), groups)
    ax.legend(fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)


def queue_throughput(result: dict[str, Any], path: Path) -> Path:
    medians = result["medians"]
    workloads = [w for w in ("noop", "write_row") if w in medians]
    labels = {"noop": "no-op messages", "write_row": "one row written each"}
    names = {"switchboard": "Switchboard", "dramatiq": "bare Dramatiq", "rq": "RQ"}
    series = {
        label: [medians[w][stack]["per_s"] for w in workloads] for stack, label in names.items()
    }
    fig, ax = plt.subplots(figsize=(7, 3.4))
    _bars(ax, [labels[w] for w in workloads], series, "{:,.0f}")
    ax.set_yscale("log")
    ax.set_ylabel("messages per second (log)")
    ax.set_title("Queue throughput, same Redis, processes and threads (median)", fontsize=10)
    return _save(fig, path)


def webhook_ingest(result: dict[str, Any], path: Path) -> Path:
    m = result["medians"]
    names = {"switchboard": "Switchboard", "floor": "floor (store + enqueue)", "bare": "bare Flask"}
    sides = [s for s in names if s in m]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    _bars(left, ["saturation"], {names[s]: [m[s]["saturation_per_s"]] for s in sides}, "{:,.0f}")
    left.set_ylabel("requests per second")
    left.set_title(f"Through nginx (Switchboard/bare {result['ratio']:.2f}x)", fontsize=10)
    _bars(
        right,
        ["p50", "p99"],
        {names[s]: [m[s]["half_p50_ms"], m[s]["half_p99_ms"]] for s in sides},
        "{:.1f}",
    )
    right.axhline(result["targets"]["half_load_p99_ms"], color="#c0392b", lw=1, ls="--")
    right.set_ylabel("ms")
    right.set_title("Latency at half of each one's saturation", fontsize=10)
    return _save(fig, path)


def enqueue_latency(result: dict[str, Any], path: Path) -> Path:
    m = result["medians"]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    loads = [
        f"light ({m['light']['rate_per_s']:.0f}/s)",
        f"heavy ({m['heavy']['rate_per_s']:.0f}/s)",
    ]
    _bars(
        ax,
        loads,
        {
            "p50": [m["light"]["p50_ms"], m["heavy"]["p50_ms"]],
            "p99": [m["light"]["p99_ms"], m["heavy"]["p99_ms"]],
        },
        "{:.1f}",
    )
    ax.set_ylabel("ms, request sent → actor started")
    ax.set_title("End-to-end enqueue latency (median of rounds)", fontsize=10)
    return _save(fig, path)


def dialer(result: dict[str, Any], path: Path) -> Path:
    cpu = result["cpu_ms_per_call_by_process"]
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.barh(list(cpu), list(cpu.values()), color=SWITCHBOARD)
    for y, value in enumerate(cpu.values()):
        ax.text(value, y, f" {value:.1f}", va="center", fontsize=8)
    ax.set_xlabel("CPU ms per call")
    ax.set_title(f"Dialer: CPU per call by process ({result['calls']} calls)", fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    return _save(fig, path)


def schedules(result: dict[str, Any], path: Path) -> Path:
    rows = result["results"]
    sizes = [f"{r['schedules']:,}" for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    _bars(
        ax,
        sizes,
        {
            "Switchboard tick (index)": [r["tick_ms_median"] for r in rows],
            "full scan": [r["full_scan_ms_median"] for r in rows],
        },
        "{:,.0f}",
    )
    ax.set_xlabel("schedules in the table (1,000 due)")
    ax.set_ylabel("ms (median)")
    ax.set_title("Schedule tick vs reading every schedule", fontsize=10)
    return _save(fig, path)


def media_streams(result: dict[str, Any], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    for name, color in (("echo", OTHERS[0]), ("switchboard", SWITCHBOARD)):
        steps = result["steps"][name]
        ax.scatter(
            [s["streams"] for s in steps],
            [max(s["p99_ms"], 0.1) for s in steps],
            label="bare echo" if name == "echo" else "Switchboard",
            color=color,
            s=18,
        )
    ax.axhline(result["p99_bound_ms"], color="#c0392b", lw=1, ls="--")
    ax.set_yscale("log")
    ax.set_xlabel("concurrent streams (50 frames/s each)")
    ax.set_ylabel("p99 frame latency, ms (log)")
    ax.set_title("Media streams: every step of every round", fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    return _save(fig, path)


def turn_latency(result: dict[str, Any], path: Path) -> Path:
    rows = result["rows"]
    fig, ax = plt.subplots(figsize=(6, 3))
    _bars(ax, [f"{r['calls']} calls" for r in rows],
          {"path added p50": [r["added_p50_ms"] for r in rows],
           "path added p99": [r["added_p99_ms"] for r in rows]}, "{:.0f}")  # fmt: skip
    ax.axhline(result["p99_bound_ms"], color="#c0392b", lw=1, ls="--")
    ax.set_ylabel("ms (model's own time subtracted)")
    ax.set_title("Voice agent: turn latency the path adds", fontsize=10)
    return _save(fig, path)


def receipts(result: dict[str, Any], path: Path) -> Path:
    rows = result["incremental"]
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(
        [r["new_messages"] for r in rows],
        [r["total_api_calls"] for r in rows],
        marker="o",
        color=SWITCHBOARD,
    )
    ax.set_xlabel("new messages since the last sync")
    ax.set_ylabel("Gmail API calls")
    ax.set_title("Incremental sync: API calls by new mail", fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    return _save(fig, path)


def api_layers(result: dict[str, Any], path: Path) -> Path:
    """CPU per request by endpoint, one bar per candidate; the api's choice in blue."""
    figures: dict[str, dict[str, float]] = result["cpu_us_per_request"]
    candidates: list[str] = result["candidates"]
    chosen = "spectree (api's plugin)"
    others = iter(("#9aa5b1", "#d98c3f", "#6b8f71", "#b07aa1", "#c9b458"))
    fig, ax = plt.subplots(figsize=(8, 3.6))
    width = 0.8 / len(candidates)
    for i, name in enumerate(candidates):
        values = [figures[endpoint][name] for endpoint in figures]
        xs = [g + (i - (len(candidates) - 1) / 2) * width for g in range(len(figures))]
        color = SWITCHBOARD if name == chosen else next(others)
        ax.bar(xs, values, width, label=name, color=color)
    ax.set_xticks(range(len(figures)), list(figures))
    ax.set_ylabel("CPU per request (µs)")
    ax.set_title("The api's schema layer: CPU per request by candidate", fontsize=10)
    ax.legend(fontsize=7, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _save(fig, path)


PLOTS: dict[str, Callable[[dict[str, Any], Path], Path]] = {
    "api_layers": api_layers,
    "turn_latency": turn_latency,
    "queue_throughput": queue_throughput,
    "webhook_ingest": webhook_ingest,
    "enqueue_latency": enqueue_latency,
    "dialer": dialer,
    "schedules": schedules,
    "media_streams": media_streams,
    "receipts": receipts,
}
