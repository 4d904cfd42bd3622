"""What every stream of a media-server process shares: settings, database, broker, the bounded
thread pool for blocking work, the pacer, and the choice of each call's agent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import dramatiq

from libs.common.db import Database
from libs.common.settings import Settings
from services.calls.media import agent_settings, call_log, protocol
from services.calls.media.agent import Agent
from services.calls.media.frames import CallInfo
from services.calls.media.playout import Pacer

logger = logging.getLogger(__name__)

T = TypeVar("T")


class MediaContext:
    def __init__(
        self, settings: Settings, database: Database, broker: dramatiq.Broker, threads: int
    ) -> None:
        self.settings, self.database, self.broker = settings, database, broker
        #: Database, broker and provider calls: blocking, so never on the event loop. Bounded:
        #: a slow database queues work here instead of opening a connection per stream.
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="media-blocking")
        self.pacer = Pacer()
        self._tasks: set[asyncio.Task[Any]] = set()

    async def blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` in the pool; the loop keeps serving every other stream meanwhile."""
        loop = asyncio.get_running_loop()
        if kwargs:
            return await loop.run_in_executor(self.pool, lambda: fn(*args, **kwargs))
        return await loop.run_in_executor(self.pool, fn, *args)

    async def start_call(self, start: protocol.Start) -> tuple[CallInfo, Agent]:
        """Claim the call for this stream and build its agent: the business's (its settings),
        else the deployment's ``VOICE_AGENT``. The claim and the settings are read side by side
        (two pool threads): the caller hears nothing until both are back. The settings read
        changes nothing, so a refused claim loses nothing by it."""
        claiming = self.blocking(call_log.claim_stream, self.database, start)
        loading = self.blocking(
            agent_settings.load, self.database, self.settings, start.business_id
        )
        info, config = await asyncio.gather(claiming, loading)
        return info, agent_settings.build(self.settings, config)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """A short task of the server's own (kept referenced until it ends)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("media background task failed: %r", task.exception())

    def cancel_background(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.pacer.stop()
        self.pool.shutdown(wait=True)
