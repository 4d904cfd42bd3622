"""`switchboard worker` and `switchboard scheduler` (the worker service's two process types),
and `switchboard calls` (the calls container's two servers)."""

from __future__ import annotations

import os
import signal
import sys
import time

import click

from libs.common.contracts import QUEUES
from libs.common.metrics_files import reset_multiprocess_dir
from libs.common.settings import ROOT, Settings
from libs.queueops.broker import worker_metrics_dir, worker_metrics_env


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
    env = dict(os.environ, SERVICE_ROLE="worker", **worker_metrics_env(settings, metrics_port))
    env["dramatiq_prom_port"] = str(metrics_port)
    # An idle Dramatiq consumer backs off up to this long between polls (its default is 1 s,
    # which would sit between a slot freeing and the next call). Only the urgent queues use it:
    # background and delay queues get WORKER_BACKGROUND_POLL_MS (libs/queueops/broker.py).
    env.setdefault("dramatiq_worker_timeout", os.environ.get("WORKER_POLL_MS", "100"))
    # Files from a previous run would be summed into this run's metrics.
    reset_multiprocess_dir(worker_metrics_dir(settings, metrics_port))
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


@click.command()
def calls() -> None:
    """Run the calls service: the webhooks (Flask, gunicorn gthread on CALLS_BIND) and the
    media server (aiohttp, on CALLS_MEDIA_BIND). If either stops, both stop (the container's
    restart policy brings them back together)."""
    from libs.common.supervisor import Supervisor

    env = dict(os.environ, SERVICE_ROLE="calls")
    supervisor = Supervisor()
    stopping = {"now": False}

    def stop(_signum: int, _frame: object) -> None:
        stopping["now"] = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    gunicorn = [sys.executable, "-m", "gunicorn", "-c"]
    supervisor.start("webhooks", [*gunicorn, "services/calls/gunicorn_conf.py"], env, ROOT)
    supervisor.start("media", [*gunicorn, "services/calls/media/gunicorn_conf.py"], env, ROOT)
    code = 0
    try:
        while not stopping["now"]:
            exited = supervisor.first_exited()
            if exited is not None:
                click.echo(f"calls: {exited.name} exited ({exited.process.returncode})", err=True)
                code = 1
                break
            time.sleep(0.5)
    finally:
        supervisor.stop_all()
    raise SystemExit(code)
