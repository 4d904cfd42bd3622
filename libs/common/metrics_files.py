"""The multiprocess metrics directory. No prometheus_client import here: the directory must be
ready (and in the environment) before that library is first imported in a process."""

from __future__ import annotations

import shutil
from pathlib import Path


def reset_multiprocess_dir(path: Path) -> None:
    """Empty the directory at start: files of a previous run would be summed in."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
