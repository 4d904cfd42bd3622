"""Gunicorn settings and hooks shared by the api and calls configs.

Importing this module must not import prometheus_client: the metrics directory has to be in
the environment first, and the master process sets it here.
"""

from __future__ import annotations

import gc
import json
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
    answer_refusals_in_json()
    # The loaded application (Flask, SQLAlchemy, the SDKs: ~90,000 objects) lives as long as the
    # worker; a full collection walking it paused every thread for ~45 ms, which a caller's
    # audio stream feels. Frozen objects are left out of collections.
    gc.freeze()


def answer_refusals_in_json() -> None:
    """Requests gunicorn refuses before Flask sees them (a request line over
    ``limit_request_line``: 414; a header over its limits: 431; a malformed request: 400) are
    answered in the services' JSON error shape, not gunicorn's HTML page. Gunicorn writes
    every such answer through ``gunicorn.util.write_error`` (from ``Worker.handle_error``,
    whatever the worker class): this worker's copy of that one function is replaced."""
    from gunicorn import util

    util.write_error = write_json_error


def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """``gunicorn.util.write_error``'s contract, with a JSON body."""
    from gunicorn import util

    from libs.web.errors import error_code

    # gunicorn's message names the limit or quotes the refused line (the client's own bytes).
    message = mesg[:300] or ("an unexpected error occurred" if status_int >= 500 else reason)
    error = {"code": error_code(status_int), "message": message}
    body = json.dumps({"error": error}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)
