"""``python -m probe``: probe the embedded stack (started here), or a running one with --api.

    make probe                                   # the embedded stack, started and stopped here
    python -m probe --api https://sb.example.com --calls https://sb.example.com \\
        --log /var/log/switchboard/api.log       # tokens in PROBE_TOKEN_A/_B, PROBE_OPERATOR_TOKEN

Against a running stack, use two businesses and an operator token made for the probe: it
creates rows as A and sends B (and careless bodies) at them.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import click

from probe.embedded import embedded_target
from probe.model import CATEGORIES
from probe.report import RESULTS
from probe.runner import probe
from probe.target import Target


def save(results: dict[str, Any], path: Path = RESULTS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")


def summary_lines(results: dict[str, Any]) -> list[str]:
    ops = results["operations"]
    lines = [f"probed {results['target']}: {ops['covered']} of {ops['documented']} documented "
             f"operations, {results['requests']} requests in {results['elapsed_s']} s"]  # fmt: skip
    for name in CATEGORIES:
        row = results["summary"][name]
        lines.append(f"  {name:<18} {row['checks']:>5} checks  {row['failed']} failed  "
                     f"{row['server_errors']} 5xx  {row['leaks']} leaks")  # fmt: skip
    for failure in results["failures"][:40]:
        lines.append(f"  FAILED {failure['category']}: {failure['operation']} — "
                     f"{failure['case']}: {failure['problem']}")  # fmt: skip
    return lines


@click.command()
@click.option("--api", "api_url", help="Where clients reach /api/ (nginx). Default: embedded.")
@click.option(
    "--calls", "calls_url", help="Where Twilio reaches /webhook/ and /ws/ (default: --api)."
)
@click.option("--log", "logs", multiple=True, type=click.Path(path_type=Path),
              help="A log file of the stack to search for secrets (repeatable).")  # fmt: skip
@click.option("--out", default=str(RESULTS), show_default=True, type=click.Path(path_type=Path))
def main(api_url: str | None, calls_url: str | None, logs: tuple[Path, ...], out: Path) -> None:
    """Probe a Switchboard stack from outside; exit 1 on any failed check."""
    if api_url:
        target = Target(
            api=api_url.rstrip("/"),
            calls=(calls_url or api_url).rstrip("/"),
            business_a=os.environ["PROBE_TOKEN_A"],
            business_b=os.environ["PROBE_TOKEN_B"],
            operator=os.environ["PROBE_OPERATOR_TOKEN"],
            twilio_auth_token=os.environ.get("PROBE_TWILIO_AUTH_TOKEN"),
            a_number=os.environ.get("PROBE_NUMBER_A"),
            logs=list(logs),
            label=api_url,
        )
        results = probe(target, command=f"python -m probe --api {api_url}")
    else:
        with (
            tempfile.TemporaryDirectory(prefix="sb-probe-") as tmp,
            embedded_target(Path(tmp) / "var", Path(tmp) / "stack.log") as target,
        ):
            results = probe(target)
    save(results, out)
    click.echo("\n".join(summary_lines(results)))
    click.echo(f"results: {out}")
    raise SystemExit(1 if results["failures"] else 0)


if __name__ == "__main__":
    main()
