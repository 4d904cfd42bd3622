"""Starts child processes and stops them all, grandchildren included, leaving no orphans."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # If the supervisor itself is SIGKILLed, the kernel sends each child SIGTERM.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: Ctrl-C still stops everything through stop_all


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]

    @property
    def running(self) -> bool:
        return self.process.poll() is None


class Supervisor:
    def __init__(self) -> None:
        self.children: list[Child] = []

    def start(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path | None = None
    ) -> Child:
        # A session of its own: the terminal's Ctrl-C reaches only us, and we stop the children
        # in order; a process group lets us reach gunicorn's and Dramatiq's own children too.
        process = subprocess.Popen(
            list(argv), env=dict(env), cwd=cwd, start_new_session=True, preexec_fn=_die_with_parent
        )
        child = Child(name, process)
        self.children.append(child)
        return child

    def first_exited(self) -> Child | None:
        return next((child for child in self.children if not child.running), None)

    def stop_all(self, timeout_s: float = 20.0) -> None:
        """SIGTERM every child (last started first), then SIGKILL what is left of their groups."""
        for child in reversed(self.children):
            _signal_group(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for child in reversed(self.children):
            remaining = max(0.1, deadline - time.monotonic())
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=remaining)
        for child in self.children:
            # Even after the leader exits, stragglers in its group are killed.
            _signal_group(child.process.pid, signal.SIGKILL)
            if child.running:
                child.process.wait(timeout=5)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
