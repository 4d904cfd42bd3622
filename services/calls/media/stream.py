"""One media stream as a pipeline: Twilio frames in (``protocol``) → recording and VAD → the
agent → the paced playout → Twilio frames out.

Once a stream has started, frames that are malformed, unknown, oversized or out of order are
logged (without audio) and counted, and the stream carries on: one bad frame must not cost the
caller the call. Before that there is no call to protect, so the stream is refused (closed,
with one log line) by anything but ``connected`` and a valid ``start`` naming a call we
answered that has neither streamed nor ended: Twilio signs the upgrade over the URL alone, so
a captured upgrade and ``start`` can be replayed, and Twilio can open a second WebSocket for
one call. The first stream of a call claims it (``call_log.claim_stream``); every later one is
refused and changes nothing. Database work runs in the server's bounded thread pool
(``MediaContext.blocking``), never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from asyncio.tasks import _enter_task, _leave_task
from collections.abc import Coroutine
from typing import Any

from libs.common import metrics
from libs.common.audio.wav import MulawWavWriter
from services.calls.media import call_log, protocol
from services.calls.media.actions import perform
from services.calls.media.agent import FALLBACK, Agent, KeypadAgent, prompt_audio
from services.calls.media.call_log import StreamRefused
from services.calls.media.context import MediaContext
from services.calls.media.frames import (
    Action,
    CallerAudio,
    Dtmf,
    Event,
    HangUp,
    Interrupted,
    MarkPlayed,
    SpeechStarted,
    SpeechStopped,
)
from services.calls.media.line import Line
from services.calls.media.playout import Playout, Send
from services.calls.media.protocol import FrameError
from services.calls.media.vad import Vad

logger = logging.getLogger(__name__)

for _result in ("ok", "malformed", "oversized", "unknown", "out_of_order"):
    metrics.MEDIA_FRAMES.labels(_result)

#: Frame counts are added up per stream and written to the metrics every this many frames (one
#: second of audio) and at the end: prometheus_client's multiprocess values share one
#: process-wide lock, and taking it for every frame of hundreds of streams is a convoy.
METRICS_FLUSH_FRAMES = 50
#: One frame in this many has its handling time observed (five samples a second per stream
#: describe the distribution as well as fifty).
TIMING_SAMPLE_EVERY = 10
#: An idle stream (no frame at all, not even media) is closed after this long.
RECEIVE_TIMEOUT_S = 60.0
#: Twilio sends ``start`` right after ``connected``: a socket that has not started by then is
#: not a call, and must not be held for the minute an idle call is given.
START_TIMEOUT_S = 5.0

__all__ = ["MediaStream", "StreamRefused"]


async def _finish(coro: Coroutine[Any, Any, None], waiting: Any) -> None:
    """Drive ``coro``, started by hand, to its end, as its task would have: from where its
    first ``send`` left it, waiting on the future it yielded (or None: a bare yield)."""
    while True:
        try:
            if waiting is None:
                await asyncio.sleep(0)
            else:
                # Yielded by the coroutine's own await, which marked it as awaited: a task
                # clears the mark before waiting on it (or the future refuses a second await).
                waiting._asyncio_future_blocking = False
                await waiting
        except BaseException as exc:  # handed to the coroutine, as a task would
            if waiting is None or not waiting.done():
                # This task was cancelled: the coroutine gets the CancelledError where it
                # waits. (A future that failed is read by the coroutine itself, below.)
                try:
                    waiting = coro.throw(exc)
                except StopIteration:
                    return
                continue
        try:
            waiting = coro.send(None)
        except StopIteration:
            return


class FallbackAgent(KeypadAgent):
    """What a call falls back to when its agent fails: an apology, then the keypad choices."""

    async def start(self) -> None:
        self.line.play(prompt_audio(FALLBACK), label="fallback")
        self.line.mark(self.GREETING_MARK)


class MediaStream:
    def __init__(self, ctx: MediaContext, send: Send, writable: Any = None) -> None:
        self.ctx, self._send = ctx, send
        self._writable = writable or (lambda: True)
        self.state = "connecting"  # → started → stopped
        self.start: protocol.Start | None = None
        self.recorder: MulawWavWriter | None = None
        self.agent: Agent | None = None
        self.line: Line | None = None
        self.playout: Playout | None = None
        self.vad = Vad()
        self.frames = 0
        self.received = 0
        self.end_reason = "caller hung up"
        self.failure: str | None = None
        #: Loop time of the last frame received: the server closes streams idle too long.
        self.last_frame_at = asyncio.get_running_loop().time()
        #: Frame counts not yet in the metrics: the ok ones, and the others by result.
        self._ok_unflushed = 0
        self._unflushed: dict[str, int] = {}
        self._loop = asyncio.get_running_loop()
        #: The server's handler task for this socket: frames handled from the socket's read
        #: run as part of it (``receive_now``).
        self._task = asyncio.current_task()
        #: ``receive`` is handling a frame; a frame from the read is still being handled.
        self._receiving = False
        self._busy: asyncio.Task[None] | None = None

    # -- receiving -------------------------------------------------------------------------

    def receive_now(self, raw: str | bytes) -> bool:
        """A started stream's media frame, handled as the socket's data is read (the server
        offers every message here first): no queue, no task switch. True when handled (its
        agent may still be at it: ``handled``); False for anything else, or while an earlier
        frame is being handled, which then reaches ``receive`` in order."""
        if self.state != "started" or self._receiving or self._busy is not None:
            return False
        loop = self._loop
        task = self._task
        if task is None or asyncio.current_task(loop) is not None:
            return False  # not from the socket's read (aiohttp feeding its parser in a task)
        timed = self.received % TIMING_SAMPLE_EVERY == 0
        started = time.perf_counter() if timed else 0.0
        try:
            message = protocol.parse(raw)
            if message["event"] != "media":
                return False
            audio, payload = protocol.media_payload(message)
        except FrameError:
            return False  # receive() counts and logs it
        self.last_frame_at = loop.time()
        if audio:
            try:
                self._caller_audio_now(audio, payload, loop, task)
            except Exception:
                # Raised into aiohttp's parser it would be lost with the frame: the queued
                # path would have ended the stream, this one says so and carries on.
                logger.exception("media stream %s: a frame failed", self._sid())
        self.received += 1
        self._ok_unflushed += 1
        if timed:
            metrics.MEDIA_FRAME_SECONDS.observe(time.perf_counter() - started)
        if self.received % METRICS_FLUSH_FRAMES == 0:
            self.flush_metrics()
        return True

    def _caller_audio_now(
        self, audio: bytes, payload: str, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any]
    ) -> None:
        # The agent's coroutine runs here as if in the handler's task (which is waiting for
        # the queue meanwhile): asyncio.current_task() is that task, as it would be had the
        # frame been queued. If it has to wait, a task finishes it, and the frames that
        # arrive meanwhile are queued behind it (``_busy``, awaited by ``receive``).
        coro = self._caller_audio(audio, payload)
        _enter_task(loop, task)
        try:
            waiting = coro.send(None)
        except StopIteration:
            return
        finally:
            _leave_task(loop, task)
        self._busy = loop.create_task(_finish(coro, waiting), name="media frame")
        self._busy.add_done_callback(self._not_busy)

    def _not_busy(self, task: asyncio.Task[None]) -> None:
        self._busy = None
        if not task.cancelled() and task.exception() is not None:
            logger.error("media stream %s: a frame failed: %r", self._sid(), task.exception())

    async def receive(self, raw: str | bytes) -> None:
        """A frame through aiohttp's queue, in order: after any frame handled from the
        socket's read whose agent is still at it."""
        self._receiving = True  # from here on, no frame is handled from the read
        if self._busy is not None:
            await asyncio.wait([self._busy])
        timed = self.received % TIMING_SAMPLE_EVERY == 0
        started = time.perf_counter() if timed else 0.0
        try:
            message = protocol.parse(raw)
            if message["event"] == "media" and self.state == "started":  # 50 a second
                audio, payload = protocol.media_payload(message)
                if audio:
                    await self._caller_audio(audio, payload)
            else:
                await self._handle(message)
            self._ok_unflushed += 1
        except FrameError as exc:
            self._unflushed[exc.result] = self._unflushed.get(exc.result, 0) + 1
            if self.state == "connecting":
                raise StreamRefused(f"{exc} (before a valid start)") from None
            logger.warning("media stream %s: dropped a frame: %s", self._sid(), exc)
        finally:
            self._receiving = False
            self.received += 1
            if timed:
                metrics.MEDIA_FRAME_SECONDS.observe(time.perf_counter() - started)
            if self.received % METRICS_FLUSH_FRAMES == 0:
                self.flush_metrics()

    def flush_metrics(self) -> None:
        if self._ok_unflushed:
            metrics.MEDIA_FRAMES.labels("ok").inc(self._ok_unflushed)
            self._ok_unflushed = 0
        for result, count in self._unflushed.items():
            metrics.MEDIA_FRAMES.labels(result).inc(count)
        self._unflushed.clear()

    async def _handle(self, message: dict[str, Any]) -> None:
        """Every frame but the started stream's media (``receive`` handles those itself)."""
        event = message["event"]
        if event == "media":
            raise FrameError("out_of_order", "media before start or after stop")
        if event == "connected":
            return
        if event == "start":
            if self.state != "connecting":
                raise FrameError("out_of_order", "a second start")
            try:
                start = protocol.parse_start(message)
            except FrameError as exc:
                raise StreamRefused(f"unusable start: {exc}") from None
            await self._on_start(start)
            return
        if self.state != "started":
            raise FrameError("out_of_order", f"{event} before start or after stop")
        if event == "dtmf":
            await self._to_agent(Dtmf(protocol.dtmf_digit(message)))
        elif event == "mark":
            await self._to_agent(MarkPlayed(protocol.mark_name(message)))
        elif event == "stop":
            self.state = "stopping"

    @property
    def receive_timeout_s(self) -> float:
        """How long the server waits for the next frame before it closes the socket."""
        return START_TIMEOUT_S if self.state == "connecting" else RECEIVE_TIMEOUT_S

    async def _caller_audio(self, audio: bytes, payload: str) -> None:
        # The hot path, 50 times a second per call: one coroutine (the agent's) per frame,
        # and the echo or the due frame written at once, synchronously (docs/voice.md).
        playout, agent = self.playout, self.agent
        assert self.recorder is not None and playout is not None
        self.recorder.write(audio)
        self.frames += 1
        if agent is None:
            return
        playout.inline = True
        try:
            if agent.local_vad:
                await self._hear(audio, agent, playout)
                agent = self.agent  # the VAD's events may have failed it over
            if agent is not None:
                try:
                    await agent.on_event(CallerAudio(audio, payload))
                except Exception as exc:
                    self._agent_failed(exc, "CallerAudio")
        finally:
            playout.inline = False
        if playout.inline_due:
            playout.send_inline()

    async def _hear(self, audio: bytes, agent: Agent, playout: Playout) -> None:
        change = self.vad.feed(audio)
        if change == "started":
            await self._to_agent(SpeechStarted())
            if agent.local_barge_in and playout.playing:
                heard = playout.clear()
                await self._to_agent(Interrupted(heard.label, heard.ms))
        elif change == "stopped":
            await self._to_agent(SpeechStopped())

    async def _to_agent(self, event: Event) -> None:
        if self.agent is None:
            return
        try:
            await self.agent.on_event(event)
        except Exception as exc:
            self._agent_failed(exc, type(event).__name__)

    def _agent_failed(self, exc: Exception, event: str) -> None:
        logger.exception("call %s: agent failed on %s", self._call_sid(), event)
        self._fail(f"agent error: {type(exc).__name__}: {exc}"[:300])

    async def _on_start(self, start: protocol.Start) -> None:
        info, agent = await self.ctx.start_call(start)
        self.start = start
        relative = f"{start.business_id}/{start.call_sid}.wav"
        self.recorder = MulawWavWriter(self.ctx.settings.recordings_dir / relative)
        self.state = "started"
        metrics.MEDIA_STREAMS_ACTIVE.inc()
        self.playout = Playout(self.ctx.pacer, start.stream_sid, self._send, self._writable)
        self.line = Line(info, self.playout, self._perform, self._fail)
        await self._start_agent(agent)
        # Let the pacer send the greeting's first frames before the caller's frames that
        # queued up during the claim are read: the first audio must not wait for them.
        await asyncio.sleep(0)

    async def _start_agent(self, agent: Agent) -> None:
        assert self.line is not None
        self.agent = agent
        agent.line = self.line
        try:
            await agent.start()
        except Exception as exc:
            logger.exception("call %s: agent failed to start", self._call_sid())
            self._fail(f"agent could not start: {type(exc).__name__}: {exc}"[:300])

    # -- acting ----------------------------------------------------------------------------

    async def _perform(self, action: Action) -> None:
        assert self.line is not None
        await perform(self.ctx, self.line.info, self.line, action)
        if isinstance(action, HangUp):
            self.end_reason = action.reason

    def _fail(self, reason: str) -> None:
        """The agent failed: the caller hears the fallback prompt and gets the keypad; the
        reason goes on the call log. A fallback that fails ends the stream quietly."""
        if self.failure is not None or self.line is None or self.state != "started":
            return
        self.failure = reason
        logger.warning("call %s: agent failed, falling back: %s", self._call_sid(), reason)
        metrics.AGENT_FAILURES.inc()
        failed = self.agent
        assert self.playout is not None
        self.playout.clear()
        fallback = FallbackAgent()
        self.agent = None
        line = self.line

        async def switch() -> None:
            if failed is not None:
                try:
                    await failed.stop(f"failed: {reason}")
                except Exception:
                    logger.exception(
                        "call %s: failed agent did not stop cleanly", line.info.call_sid
                    )
            await self.ctx.blocking(
                call_log.update_call, self.ctx.database, line.info.call_id, agent_error=reason
            )
            await self._start_agent(fallback)

        self.ctx.spawn(switch())

    # -- ending ----------------------------------------------------------------------------

    async def finish(self) -> None:
        """On ``stop`` or when the socket closes: idempotent."""
        self.flush_metrics()
        if self.state not in ("started", "stopping"):
            self.state = "stopped"
            return
        self.state = "stopped"
        metrics.MEDIA_STREAMS_ACTIVE.dec()
        if self._busy is not None:
            self._busy.cancel()
        assert self.start is not None and self.recorder is not None and self.line is not None
        assert self.playout is not None
        self.recorder.close()
        self.playout.close()
        agent, self.agent = self.agent, None
        if agent is not None:
            try:
                await agent.stop(self.end_reason)
            except Exception:
                logger.exception("call %s: agent did not stop cleanly", self._call_sid())
        await self.line.close()
        info = self.line.info
        await self.ctx.blocking(
            call_log.finish,
            self.ctx.database,
            self.ctx.broker,
            info.call_id,
            self.recorder.duration_ms,
            transcript=self.line.transcript_lines,
            first_audio_at=self.playout.first_audio_at,
        )

    def _sid(self) -> str:
        return self.start.stream_sid if self.start else "(not started)"

    def _call_sid(self) -> str:
        return self.start.call_sid if self.start else "(not started)"
