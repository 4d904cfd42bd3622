"""The worker's multiprocess metrics files: one directory per worker instance, emptied at its
start without tripping over files another process removes meanwhile."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from libs.common import metrics_files
from libs.common.metrics_files import reset_multiprocess_dir
from libs.common.settings import Settings
from libs.queueops.broker import worker_metrics_dir, worker_metrics_env


def test_two_workers_on_one_host_keep_their_files_apart(settings: Settings) -> None:
    first, second = worker_metrics_dir(settings, 9192), worker_metrics_dir(settings, 9193)
    assert first != second and first.parent == second.parent == settings.metrics_dir
    assert worker_metrics_env(settings, 9193)["PROMETHEUS_MULTIPROC_DIR"] == str(second)
    reset_multiprocess_dir(first)
    reset_multiprocess_dir(second)
    (first / "counter_1.db").write_bytes(b"x")
    reset_multiprocess_dir(second)  # a second worker (re)starting
    assert (first / "counter_1.db").exists()


def test_reset_empties_the_directory(tmp_path: Path) -> None:
    path = tmp_path / "worker-9192"
    reset_multiprocess_dir(path)
    (path / "gauge_1.db").write_bytes(b"x")
    reset_multiprocess_dir(path)
    assert path.is_dir() and list(path.iterdir()) == []


def test_a_file_removed_meanwhile_is_not_an_error_but_others_are() -> None:
    try:
        raise FileNotFoundError("gauge_mostrecent_1.db")
    except FileNotFoundError:
        metrics_files._unless_gone(None, "gauge_mostrecent_1.db", sys.exc_info())
    with pytest.raises(PermissionError):
        try:
            raise PermissionError("gauge_1.db")
        except PermissionError:
            metrics_files._unless_gone(None, "gauge_1.db", sys.exc_info())
