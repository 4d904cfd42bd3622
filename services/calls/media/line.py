"""The agent's end of the phone line: talk (play, mark, clear), act, keep the transcript.

Every method may be called at any time from the stream's event loop: from ``on_event``, or from
a task the agent started with ``spawn`` (a model's socket reader, a timer). Actions are
awaited: their database and provider work runs in the stream's thread pool.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import Any

from libs.common.models import utcnow
from services.calls.media.frames import Action, CallInfo
from services.calls.media.playout import Heard, Playout

logger = logging.getLogger(__name__)


class Line:
    def __init__(
        self,
        info: CallInfo,
        playout: Playout,
        perform: Callable[[Action], Awaitable[None]],
        on_failure: Callable[[str], None],
    ) -> None:
        self.info = info
        self._playout, self._perform, self._on_failure = playout, perform, on_failure
        #: (when, "caller" | "agent", text), in the order said.
        self.transcript_lines: list[tuple[datetime, str, str]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closed = False

    # -- talking -------------------------------------------------------------------------

    def play(self, audio: bytes, label: str | None = None, live: bool = False) -> None:
        """Queue μ-law 8 kHz audio; it leaves paced at real time. ``label`` names the clip
        (a model's item id) so a barge-in can say how much of it was heard. ``live``: audio
        that is already real time (relayed as it arrives) leaves at once."""
        self._playout.play(audio, label, live)

    def mark(self, name: str) -> None:
        """Twilio answers ``MarkPlayed(name)`` once the audio queued before it has played."""
        self._playout.mark(name)

    def clear(self) -> Heard:
        """Stop the agent's audio now (Twilio's ``clear``); how much of the clip was heard."""
        return self._playout.clear()

    @property
    def playing(self) -> bool:
        return self._playout.playing

    # -- acting --------------------------------------------------------------------------

    async def act(self, action: Action) -> None:
        """Do ``action`` to the call (see ``frames``); returns when it is recorded."""
        await self._perform(action)

    def transcript(self, role: str, text: str, at: datetime | None = None) -> None:
        if text.strip():
            self.transcript_lines.append((at or utcnow(), role, text.strip()))

    # -- tasks ---------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "agent") -> asyncio.Task[Any]:
        """Run ``coro`` for the call's length: cancelled when the call ends; if it fails, the
        call falls back (prompt, keypad) and the call log says why."""
        task = asyncio.get_running_loop().create_task(coro, name=f"{name} {self.info.call_sid}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def fail(self, reason: str) -> None:
        """The agent cannot go on (its model is gone): fall back."""
        if not self.closed:
            self._on_failure(reason)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or self.closed:
            return
        exc = task.exception()
        if exc is not None:
            logger.error("call %s: agent task failed: %r", self.info.call_sid, exc)
            self.fail(f"{type(exc).__name__}: {exc}"[:300])

    async def close(self) -> None:
        self.closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
