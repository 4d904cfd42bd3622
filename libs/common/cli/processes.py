"""`switchboard worker` and `switchboard scheduler`: the worker service's two process types."""

from __future__ import annotations

import os
import sys

import click

from libs.common.broker import worker_metrics_env
from libs.common.contracts import QUEUES
from libs.common.metrics_files import reset_multiprocess_dir
from libs.common.settings import Settings


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--processes", "-p", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--threads", "-t", default=8, show_default=True, type=click.IntRange(1, 256))
@click.option("--queues", "-Q", multiple=True, type=click.Choice(QUEUES), help="Default: all.")
@click.option("--metrics-port", default=9191, show_default=True, type=click.IntRange(0, 65535))
@click.pass_obj
def worker(
    settings: Settings, processes: int, threads: int, queues: tuple[str, ...], metrics_port: int
) -> None:
    """Run Dramatiq worker processes on every queue (or --queues)."""
    env = dict(os.environ, SERVICE_ROLE="worker", **worker_metrics_env(settings))
    env["dramatiq_prom_port"] = str(metrics_port)
    # An idle Dramatiq consumer backs off up to this long between polls (its default is 1 s,
    # which would sit between a slot freeing and the next call). Only the urgent queues use it:
    # background and delay queues get WORKER_BACKGROUND_POLL_MS (libs/common/broker.py).
    env.setdefault("dramatiq_worker_timeout", os.environ.get("WORKER_POLL_MS", "100"))
    # Files from a previous run would be summed into this run's metrics.
    reset_multiprocess_dir(settings.metrics_dir / "worker")
    argv = [sys.executable, "-m", "dramatiq", "services.worker.main", "--processes", str(processes)]
    argv += ["--threads", str(threads)]
    if queues:
        argv += ["--queues", *queues]
    os.execve(sys.executable, argv, env)


@click.command()
@click.option("--metrics-port", default=9192, show_default=True, type=click.IntRange(0, 65535))
def scheduler(metrics_port: int) -> None:
    """Run the scheduler (safe to run several: one leader emits)."""
    env = dict(os.environ, SERVICE_ROLE="scheduler", SCHEDULER_METRICS_PORT=str(metrics_port))
    argv = [sys.executable, "-m", "services.worker.scheduler"]
    os.execve(sys.executable, argv, env)
