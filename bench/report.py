"""Renders docs/benchmarks.md (tables, targets, plots under docs/img/) and
bench/results/latest.json (every result plus the machine) from bench/results/*.json.

Each benchmark module owns its section's prose (its ``markdown(result)``) and the new
comparisons their targets (``checks(result)``); this module adds the machine, the summary of
targets, the figures, and keeps the file's paragraphs wrapped.

    .venv/bin/python -m bench.report
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import subprocess
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil
import psycopg
import redis

from bench import plots
from bench.support import BENCH_REDIS_URL, RESULTS, Check, table
from libs.common.settings import ROOT
from tests.support.services import POSTGRES_ADMIN_URL

DOC = ROOT / "docs" / "benchmarks.md"
IMG = ROOT / "docs" / "img"
COMMAND = "make bench-report"


@dataclass(frozen=True)
class Section:
    name: str  # the result file's stem and the module's name under bench/
    title: str

    def module(self) -> Any:
        return importlib.import_module(f"bench.{self.name}")


#: In the order of the document: the comparisons from the issue, then the earlier benchmarks.
SECTIONS = (
    Section("queue_throughput", "Queue throughput"),
    Section("webhook_ingest", "Webhook ingest"),
    Section("enqueue_latency", "End-to-end enqueue latency"),
    Section("dialer", "Dialer"),
    Section("schedules", "Schedule tick"),
    Section("media_streams", "Media streams"),
    Section("turn_latency", "Voice agent turn latency"),
    Section("receipts", "Gmail receipts sync"),
    Section("api_layers", "API schema layer"),
    Section("coordination", "Coordination state"),
    Section("soak", "Soak"),
)


def _run(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (done.stdout or done.stderr).strip()


def machine() -> dict[str, Any]:
    """What the figures were measured on, as far as this process can tell."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=2) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            postgres = str(row[0]) if row else ""
    except psycopg.Error:
        postgres = "unreachable"
    try:
        info = redis.Redis.from_url(BENCH_REDIS_URL, socket_timeout=2).info("server")
        redis_version = str(info["redis_version"])
    except redis.RedisError:
        redis_version = "unreachable"
    commit = _run(["git", "rev-parse", "--short=12", "HEAD"])
    # The benchmarks' own outputs do not count: `make bench` rewrites them as it goes.
    outputs = [":!bench/results", ":!docs/benchmarks.md", ":!docs/img"]
    status = ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *outputs]
    dirty = bool(_run(status))
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        "postgresql": postgres,
        "redis": redis_version,
        "nginx": _run(["nginx", "-v"]).removeprefix("nginx version: ")
        or _run(["/usr/sbin/nginx", "-v"]).removeprefix("nginx version: "),
        "packages": {
            name: metadata.version(name)
            for name in ("dramatiq", "rq", "flask", "gunicorn", "sqlalchemy", "psycopg", "redis")
        },
        "git_commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def load_results() -> dict[str, dict[str, Any]]:
    out = {}
    for section in SECTIONS:
        path = RESULTS / f"{section.name}.json"
        if path.exists():
            result = json.loads(path.read_text())
            result.setdefault(
                "measured_at",
                datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds"),
            )
            out[section.name] = result
    return out


def reflow(markdown: str, width: int = 100) -> str:
    """Rewrap plain paragraphs (not tables, headings, lists, images or code) to ``width``."""
    out: list[str] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            out.append(
                textwrap.fill(
                    " ".join(paragraph), width, break_on_hyphens=False, break_long_words=False
                )
            )
            paragraph.clear()

    list_item: list[str] = []
    for line in markdown.splitlines():
        stripped = line.strip()
        if list_item and (stripped and line.startswith("  ") and not stripped.startswith("- ")):
            list_item.append(stripped)  # a list item's continuation line
            continue
        if list_item:
            out.append(
                textwrap.fill(
                    " ".join(list_item),
                    width,
                    subsequent_indent="  ",
                    break_on_hyphens=False,
                    break_long_words=False,
                )
            )
            list_item = []
        if stripped.startswith("- "):
            flush()
            list_item = [stripped]
        elif not stripped or stripped.startswith(("|", "#", "!", "```", "<!--")):
            flush()
            out.append(line)
        else:
            paragraph.append(stripped)
    flush()
    if list_item:
        out.append(textwrap.fill(" ".join(list_item), width, subsequent_indent="  "))
    return "\n".join(out).rstrip() + "\n"


def _checks(results: dict[str, dict[str, Any]]) -> list[Check]:
    found: list[Check] = []
    for section in SECTIONS:
        checks: Callable[[dict[str, Any]], list[Check]] | None = getattr(
            section.module(), "checks", None
        )
        if section.name in results and checks is not None:
            found += checks(results[section.name])
    return found


def render(results: dict[str, dict[str, Any]], host: dict[str, Any]) -> str:
    IMG.mkdir(parents=True, exist_ok=True)
    checks = _checks(results)
    parts = [
        "# Benchmarks",
        "<!-- Generated by `make bench` (bench/report.py) from bench/results/*.json: edit the "
        "prose in bench/, not here. -->",
        f"Measured on {host['cores']} cores ({host['cpu']}), {host['memory_gib']} GiB, "
        f"{host['os']}; Python {host['python']}, PostgreSQL {host['postgresql']}, Redis "
        f"{host['redis']}, nginx {host['nginx']}; Dramatiq {host['packages']['dramatiq']}, RQ "
        f"{host['packages']['rq']}; commit {host['git_commit']}; report generated "
        f"{host['generated_at']}. PostgreSQL, Redis, the load generators and every process being "
        "measured share this one machine, which other work may share too: every comparison "
        "alternates its sides within each round and takes medians, so both sides meet the same "
        "conditions, and the queue and webhook benchmarks show the CPU time the virtual "
        "machine's host took for other guests during each measurement (steal). Each figure is "
        "reproduced by the command shown in its section; `make "
        "bench` runs them all and then this report (`make bench-report`). Every result is in "
        "`bench/results/<name>.json`, and all of them with this machine description in "
        "`bench/results/latest.json`.",
        "## Targets",
        table(
            ["target", "wanted", "measured", ""],
            [[c.what, c.target, c.measured, c.verdict] for c in checks],
        )
        if checks
        else "No comparison has been run yet (`make bench`).",
    ]
    for section in SECTIONS:
        result = results.get(section.name)
        if result is None:
            parts.append(f"## {section.title}\n\nNot measured yet: `make bench` runs it.")
            continue
        parts.append(section.module().markdown(result).strip())
        plot = plots.PLOTS.get(section.name)  # a table says enough for some
        if plot is not None:
            image = plot(result, IMG / f"{section.name}.png")
            parts.append(f"![{section.title}](img/{image.name})")
        parts.append(f"_Measured {result['measured_at']}; reproduce with `{result['command']}`._")
    return reflow("\n\n".join(parts))


def main() -> None:
    results = load_results()
    host = machine()
    DOC.write_text(render(results, host))
    latest = {"machine": host, "results": results}
    (RESULTS / "latest.json").write_text(json.dumps(latest, indent=2) + "\n")
    missing = [s.name for s in SECTIONS if s.name not in results]
    print(
        f"wrote {DOC.relative_to(ROOT)}, {len(results)} sections with figures under "
        f"{IMG.relative_to(ROOT)}/ and bench/results/latest.json"
        + (f"; not measured yet: {', '.join(missing)}" if missing else "")
    )


if __name__ == "__main__":
    main()
