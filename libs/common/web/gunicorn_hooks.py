"""Gunicorn settings and hooks shared by the api and calls configs.

Importing this module must not import prometheus_client: the metrics directory has to be in
the environment first, and the master process sets it here.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

from libs.common.metrics_files import reset_multiprocess_dir
from libs.common.settings import Settings


def prepare_metrics_env(service: str) -> Path:
    """Point prometheus_client at this service's multiprocess directory (master and workers)."""
    settings = Settings.from_env()
    path = settings.metrics_dir / service
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path


def make_on_starting(path: Path) -> Any:
    def on_starting(server: Any) -> None:
        reset_multiprocess_dir(path)

    return on_starting


def child_exit(server: Any, worker: Any) -> None:
    # Live gauges of a dead worker must stop counting; counters keep their totals.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def post_worker_init(worker: Any) -> None:
    # The loaded application (Flask, SQLAlchemy, the SDKs: ~90,000 objects) lives as long as the
    # worker; a full collection walking it paused every thread for ~45 ms, which a caller's
    # audio stream feels. Frozen objects are left out of collections.
    gc.freeze()
