"""The multiprocess metrics directory. No prometheus_client import here: the directory must be
ready (and in the environment) before that library is first imported in a process."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any


def reset_multiprocess_dir(path: Path) -> None:
    """Empty the directory at start: files of a previous run would be summed in."""
    if path.exists():
        shutil.rmtree(path, onerror=_unless_gone)
    path.mkdir(parents=True, exist_ok=True)


def _unless_gone(function: Any, name: str, exc_info: Any) -> None:
    """A file another process removed meanwhile (a dying worker of the previous run cleaning
    up its own) is what emptying wanted anyway; anything else is raised."""
    if not issubclass(exc_info[0], FileNotFoundError):
        raise exc_info[1]
