"""The agent's audio to the caller, paced at one 20 ms frame every 20 ms.

Twilio plays what it is sent as it arrives, so audio sent faster than real time piles up in
Twilio's buffer where a barge-in can only ``clear`` it blind, and audio sent late is a gap the
caller hears. Each stream's ``Playout`` holds the frames not yet sent; one ``Pacer`` per
process (a single task and one timer, not a task and a sleep per stream) sends every stream's
due frame on a fixed monotonic schedule, ``LEAD_S`` ahead of what the caller hears. A late tick
does not move the schedule: the frames it delayed catch up, but never closer than
``MIN_GAP_S`` apart (a burst of back-to-back frames is what a caller's jitter buffer and the
benchmark both see as choppy), and a stream that fell behind its caller's ear starts a new
schedule. Marks go out right after the audio queued before them, so Twilio echoes each one
when that audio has played. The frame's envelope is built by concatenation around a prefix
made once per stream: no JSON encoder and no dict per frame; it goes out as bytes through a
synchronous ``Send`` (the server writes the WebSocket frame to the socket itself), so sending
costs no coroutine, no await and no str round trip per frame.
"""

from __future__ import annotations

import asyncio
import binascii
import heapq
import itertools
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from libs.common import metrics
from services.calls.media import protocol
from services.calls.media.frames import FRAME_BYTES, FRAME_MS

logger = logging.getLogger(__name__)

FRAME_S = FRAME_MS / 1000
#: A frame due this soon is sent now: one wake-up serves every stream due within it.
EARLY_S = 0.002
#: How far ahead of the caller's ear audio is sent (what Twilio holds in its buffer): a frame
#: leaves when less than this is left to play. It rides out a busy loop or a burst of late
#: frames (an echo, a model's delta) without adding latency, and costs nothing on barge-in:
#: Twilio's ``clear`` empties its buffer too. A stream that fell behind (the loop was busy,
#: or the agent was silent) starts its schedule again from now: never a burst beyond it.
LEAD_S = 0.100
#: The closest two frames of one stream leave: a stream catching up on a late tick (or filling
#: its lead) gains 20 - 14 = 6 ms a frame, so its spacing stays within 6 ms of 20.
MIN_GAP_S = 0.014
#: μ-law silence, to pad the last frame of a clip.
SILENCE = b"\xff"

#: Writes one text message (UTF-8 JSON) to the caller's socket at once; raises if it is gone.
Send = Callable[[bytes], None]


@dataclass(frozen=True)
class Heard:
    """How much of the audio labelled ``label`` had been played when playback stopped."""

    label: str | None
    ms: int


class Playout:
    """One stream's queue of outgoing frames and marks (not thread-safe: the loop's only)."""

    def __init__(
        self, pacer: Pacer, stream_sid: str, send: Send, writable: Callable[[], bool] = lambda: True
    ) -> None:
        self.pacer, self.stream_sid, self._send, self._writable = pacer, stream_sid, send, writable
        self._loop = asyncio.get_running_loop()
        self._opened_at = self._loop.time()
        #: Clips (μ-law, whole frames) and marks (None, name), in order. A clip stays one
        #: entry until its last frame leaves (``_offset``: the next frame's start in it): a
        #: minute of speech queued as 3,000 frame entries made every full garbage collection
        #: walk them, 11 ms per collection at 250 such streams (tests/calls/test_playout.py).
        self._items: deque[tuple[bytes | None, str | None]] = deque()
        self._offset = 0
        #: When the caller will have heard everything sent so far (loop time).
        self.next_due = 0.0
        #: When the last frame left (loop time): the next leaves MIN_GAP_S after it at least.
        self.last_sent = float("-inf")
        #: Bumped by clear(): entries of the pacer's heap from before it are ignored.
        self.generation = 0
        self.scheduled = False
        self.closed = False
        self.frames_sent = 0
        self.frames_dropped = 0
        #: When the first frame went out: what a person heard first (compliance.py).
        self.first_audio_at: datetime | None = None
        self._label: str | None = None
        self._label_frames = 0
        self._clear_pending = False
        self._live = False
        #: Set by the stream while the agent handles a caller frame: audio due at once is then
        #: sent by the stream itself right after (send_inline), not handed to the pacer's task.
        self.inline = False
        self._inline_due = False
        prefix, suffix = protocol.outgoing_media_parts(stream_sid)
        self._prefix, self._suffix = prefix.encode(), suffix.encode()

    @property
    def pending_frames(self) -> int:
        queued = sum(len(audio) for audio, _ in self._items if audio is not None)
        return (queued - self._offset) // FRAME_BYTES

    @property
    def playing(self) -> bool:
        """Audio is queued, or the last frame sent is still being played."""
        return bool(self._items) or self.next_due > self._loop.time()

    def play(self, audio: bytes, label: str | None = None, live: bool = False) -> None:
        """Queue μ-law audio (any length; the last frame is padded with silence). ``live``
        audio is already real time (a relay of the caller's own frames): it leaves at once,
        since holding it to the schedule would only turn a burst into lasting delay."""
        if self.closed or not audio:
            return
        if live:
            self._live = True
        if type(audio) is not bytes:
            audio = bytes(audio)  # kept until played: a caller's buffer may change meanwhile
        short = len(audio) % FRAME_BYTES
        if short:
            audio = audio + SILENCE * (FRAME_BYTES - short)
        self._items.append((audio, label))
        self._kick()

    def mark(self, name: str) -> None:
        if self.closed:
            return
        self._items.append((None, name))
        self._kick()

    def clear(self) -> Heard:
        """Drop what is queued and have Twilio drop what it buffered (its ``clear``, sent at
        once); say how much of the current clip was heard."""
        heard = self.heard()
        self._items.clear()
        self._offset = 0
        self.generation += 1
        self.scheduled = False
        self._inline_due = False
        self.next_due = 0.0
        self._label, self._label_frames = None, 0
        if not self.closed:
            self._clear_pending = True
            self._kick()
        return heard

    def heard(self) -> Heard:
        now = self._loop.time()
        still_playing_ms = max(0.0, (self.next_due - now) * 1000)
        return Heard(self._label, max(0, round(self._label_frames * FRAME_MS - still_playing_ms)))

    def close(self) -> None:
        self.closed = True
        self._items.clear()
        self._offset = 0
        self.generation += 1

    def _kick(self) -> None:
        if not self.scheduled:
            self.scheduled = True
            loop_time = self._loop.time()
            due = loop_time if self._live else max(self._next_send(), loop_time)
            if self.inline and due <= loop_time:
                self._inline_due = True
            else:
                self.pacer.schedule(self, due)

    @property
    def inline_due(self) -> bool:
        """Audio became due while the stream had the agent handle a frame."""
        return self._inline_due

    def send_inline(self) -> None:
        """Send what became due while the stream had the agent handle a frame (an echo, a
        clear): one task switch less per frame than through the pacer."""
        if self._inline_due:
            self._inline_due = False
            if self.scheduled and not self.closed:
                due = self.send_due(self._loop.time())
                if due is not None:
                    self.pacer.schedule(self, due)

    def send_due(self, now: float) -> float | None:
        """Send the next frame (and the marks right behind it); the next due time, if any."""
        items = self._items
        if self._clear_pending:
            self._clear_pending = False
            self._send_text(protocol.outgoing_clear(self.stream_sid))
        if items and items[0][0] is None:
            self._send_marks()
        if items:
            clip, label = items[0]
            assert clip is not None
            end = self._offset + FRAME_BYTES
            if end >= len(clip):  # its last frame (a relayed frame is a clip of one)
                frame = clip if end == FRAME_BYTES else clip[self._offset :]
                items.popleft()
                self._offset = 0
            else:
                frame = clip[self._offset : end]
                self._offset = end
            if label != self._label:
                self._label, self._label_frames = label, 0
            if self.closed:
                pass
            elif self._writable():
                self._send(self._prefix + binascii.b2a_base64(frame, newline=False) + self._suffix)
                self.last_sent = now
                self.frames_sent += 1
                if self.frames_sent == 1:
                    metrics.AGENT_FIRST_AUDIO.observe(self._loop.time() - self._opened_at)
                    self.first_audio_at = datetime.now(UTC)  # abandonment (issue 21)
            else:
                # The caller's socket is not draining: drop rather than stall every stream.
                self.frames_dropped += 1
                metrics.MEDIA_FRAMES_DROPPED.inc()
            self._label_frames += 1
            # A caller who has heard everything sent (the agent was quiet, or the loop very
            # late) starts a new schedule from now: never a burst to make up for the past.
            self.next_due = max(self.next_due, now) + FRAME_S
            if items and items[0][0] is None:
                self._send_marks()
        if items and not self.closed:
            return now if self._live else self._next_send()
        self.scheduled = False
        return None

    def _next_send(self) -> float:
        """When the next frame leaves: LEAD_S before the caller needs it, and not sooner than
        MIN_GAP_S after the last one."""
        return max(self.next_due - LEAD_S, self.last_sent + MIN_GAP_S)

    def _send_marks(self) -> None:
        """The marks at the head of the queue: they follow the audio queued before them."""
        items = self._items
        while items and items[0][0] is None:
            self._send_text(protocol.outgoing_mark(self.stream_sid, items.popleft()[1] or ""))

    def _send_text(self, text: str) -> None:
        if not self.closed:
            self._send(text.encode())


class Pacer:
    """Sends every stream's due frames from one task per process."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int, Playout]] = []
        self._order = itertools.count()
        self._waiter: asyncio.Future[None] | None = None
        self._sleep_until = float("inf")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="pacer")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def schedule(self, playout: Playout, due: float) -> None:
        heapq.heappush(self._heap, (due, next(self._order), playout.generation, playout))
        if due < self._sleep_until and self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        heap = self._heap
        late = metrics.MEDIA_PACER_LATENESS
        while True:
            now = loop.time()
            if heap and heap[0][0] <= now + EARLY_S:
                # How late this wake is for the frame that woke it (it was meant to be
                # EARLY_S ahead of it): a busy loop, a pause, or a process not running. Once
                # per wake, not per frame; what a caller hears as a gap starts here.
                late.observe(max(0.0, now - (heap[0][0] - EARLY_S)))
            while heap and heap[0][0] <= now + EARLY_S:
                _, _, generation, playout = heapq.heappop(heap)
                if generation != playout.generation or playout.closed:
                    continue  # cleared or closed since it was scheduled
                try:
                    due = playout.send_due(now)
                except Exception as exc:  # a socket that died mid-send: that stream only
                    logger.info("media stream %s: send failed: %s", playout.stream_sid, exc)
                    playout.close()
                    continue
                if due is not None:
                    heapq.heappush(heap, (due, next(self._order), generation, playout))
                now = loop.time()
            self._waiter = loop.create_future()
            timer = None
            if heap:
                self._sleep_until = heap[0][0] - EARLY_S
                timer = loop.call_at(self._sleep_until, _wake, self._waiter)
            else:
                self._sleep_until = float("inf")
            try:
                await self._waiter
            finally:
                if timer is not None:
                    timer.cancel()
                self._sleep_until = float("-inf")


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
