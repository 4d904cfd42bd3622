"""Every test runs with this guard: a write of ``calls.status`` or ``call_jobs.status`` (or a
new call row) from anywhere but the call lifecycle (libs/campaigns/lifecycle) fails the test.

It watches the SQL itself (``before_cursor_execute`` on every engine), so it catches ORM flushes,
Core statements and raw SQL alike, and names the module that caused the write: the innermost
frame of the project's own code (not SQLAlchemy's) on the stack. Tests themselves may write
statuses (to set a scene); services, actors and libraries may not.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = (ROOT / "libs" / "campaigns" / "lifecycle", ROOT / "tests")
#: Generic statement helpers (``update_by_id``): the writer is whoever called them.
_HELPERS = (Path(__file__).resolve(), ROOT / "libs" / "common" / "db.py")

_UPDATE = re.compile(r"^\s*UPDATE\s+(calls|call_jobs)\s+SET\s+(.*?)(?:\sWHERE\s|\sRETURNING\s|$)",
                     re.IGNORECASE | re.DOTALL)  # fmt: skip
_INSERT_CALL = re.compile(r"^\s*INSERT\s+INTO\s+calls\b", re.IGNORECASE)
_SETS_STATUS = re.compile(r"(^|[\s,])status\s*=", re.IGNORECASE)


class StatusWrittenOutsideLifecycle(AssertionError):
    pass


def writes_status(statement: str) -> str | None:
    """The table whose status ``statement`` writes (or that it adds a call to), else None."""
    update = _UPDATE.match(statement)
    if update is not None and _SETS_STATUS.search(update.group(2)):
        return update.group(1).lower()
    if _INSERT_CALL.match(statement):
        return "calls"
    return None


def writer() -> Path | None:
    """The project file whose code caused the statement being executed."""
    frame = sys._getframe(1)
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        ours = path.is_absolute() and ROOT in path.parents and ".venv" not in path.parts
        if ours and path not in _HELPERS:
            return path
        frame = frame.f_back  # type: ignore[assignment]
    return None


def _check(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
    table = writes_status(statement)
    if table is None:
        return
    path = writer()
    if path is None or any(allowed in path.parents for allowed in ALLOWED):
        return
    raise StatusWrittenOutsideLifecycle(
        f"{path.relative_to(ROOT)} writes {table}.status outside libs/campaigns/lifecycle: "
        f"{statement[:200]}"
    )


def install() -> None:
    if not event.contains(Engine, "before_cursor_execute", _check):
        event.listen(Engine, "before_cursor_execute", _check)
