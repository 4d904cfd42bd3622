"""Twilio's side of an answered outbound call's ``<Connect><Stream>``: the media stream the
voice TwiML asks for, opened from the simulator as Twilio opens it.

The WebSocket is ``ws_client``'s (the signed upgrade as ``media_client`` does it for inbound
calls) and the frames are ``media_client``'s: ``connected``, ``start`` (streamSid, callSid,
customParameters, mediaFormat), a 20 ms frame of μ-law silence every 20 ms on a fixed
schedule, and ``stop`` when the call ends. Marks are echoed once the audio before them has
played. What the ledger gets is what a person on the line would notice: how long after the
stream's start the agent was first heard.

Every stream of the simulator runs on one asyncio loop in one thread, started with the first
stream: a call whose TwiML has no stream costs nothing here.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import threading
import time
from array import array
from dataclasses import dataclass
from typing import Any

from libs.telephony.twilio_signature import sign
from simulators.twilio.media_client import (
    FRAME_BYTES,
    FRAME_S,
    SILENCE,
    StreamResult,
    _Frames,
    _metronome,
    _Player,
    _start_frame,
)
from simulators.twilio.ws_client import WebSocket

#: A stream outlives its call by at most this much if the call's end never reaches it.
MAX_OVERRUN_S = 5.0


@dataclass
class OutboundStream:
    """One call's stream, as the ledger shows it (wall-clock times, seconds)."""

    url: str
    parameters: dict[str, str]
    stream_sid: str = ""
    started_at: float | None = None
    started_mono: float = 0.0
    stopped_at: float | None = None
    error: str | None = None
    result: StreamResult | None = None
    #: Set (on the loop) when the call ends: ``stop`` is sent and the socket closed.
    ended: asyncio.Event | None = None

    @property
    def first_agent_audio_s(self) -> float | None:
        """From ``start`` sent to the agent's first media frame received (None: not yet)."""
        if self.result is None or not self.result.first_audio_at:
            return None
        return round(self.result.first_audio_at - self.started_mono, 3)

    def to_ledger(self) -> dict[str, Any]:
        result = self.result
        return {
            "url": self.url,
            "parameters": dict(self.parameters),
            "stream_sid": self.stream_sid,
            "started_at": self.started_at,
            "first_agent_audio_s": self.first_agent_audio_s,
            "sent": result.sent if result else 0,
            "agent_media": result.received_media if result else 0,
            "marks": result.received_marks if result else 0,
            "stopped_at": self.stopped_at,
            "error": self.error,
        }


class StreamRunner:
    """The simulator's streams: one event loop thread, started lazily."""

    def __init__(self, auth_token: str, account_sid: str) -> None:
        self.auth_token, self.account_sid = auth_token, account_sid
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="streams", daemon=True).start()
                self._loop = loop
            return self._loop

    def open(self, call_sid: str, stream: OutboundStream, seconds: float) -> None:
        """Stream for the call (at most ``seconds`` plus ``MAX_OVERRUN_S``) until ``end``."""
        asyncio.run_coroutine_threadsafe(
            self._run(call_sid, stream, seconds + MAX_OVERRUN_S), self._running_loop()
        )

    def end(self, stream: OutboundStream) -> None:
        """The call ended (its planned end or a hang-up): Twilio stops the stream."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(_set, stream)

    def stop(self) -> None:
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)

    async def _run(self, call_sid: str, stream: OutboundStream, seconds: float) -> None:
        stream.ended = stream.ended or asyncio.Event()
        stream.stream_sid = "MZ" + secrets.token_hex(16)
        result = stream.result = StreamResult(0, call_sid=call_sid)
        player = _Player(stream.stream_sid, result, array("d"))
        headers = {"X-Twilio-Signature": sign(self.auth_token, stream.url, {})}
        try:
            ws = player.ws = await WebSocket.connect(
                stream.url, headers, player.on_message, timeout=10
            )
        except (OSError, ValueError) as exc:
            stream.error = f"{type(exc).__name__}: {exc}"
            return
        try:
            await self._talk(ws, player, stream, seconds)
        finally:
            ws.abort()
            stream.stopped_at = time.time()

    async def _talk(self, ws: WebSocket, player: _Player, stream: OutboundStream,
                    seconds: float) -> None:  # fmt: skip
        assert stream.ended is not None and stream.result is not None
        result, sid = stream.result, stream.stream_sid
        ws.send_text(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        stream.started_mono, stream.started_at = time.monotonic(), time.time()
        ws.send_text(_start_frame(sid, result.call_sid, stream.parameters))
        silence = base64.b64encode(SILENCE * FRAME_BYTES).decode()
        loop = asyncio.get_running_loop()
        frames = _Frames(ws, sid, result, array("d"), round(seconds / FRAME_S), silence, silence,
                         set(), set())  # fmt: skip
        _metronome(loop).add(frames, loop.time())
        ended = asyncio.ensure_future(stream.ended.wait())
        either: list[asyncio.Future[Any]] = [frames.done, ended]
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        ended.cancel()
        frames.i = frames.count  # no frame after the call's end
        if not ws.closed:
            # connected is not numbered; start is 1, the media frames 2 to sent + 1.
            stop = {"event": "stop", "sequenceNumber": str(result.sent + 2), "streamSid": sid,
                    "stop": {"accountSid": self.account_sid,
                             "callSid": result.call_sid}}  # fmt: skip
            ws.send_text(json.dumps(stop))
            try:
                # The media server closes the socket after stop.
                await asyncio.wait_for(asyncio.shield(ws.done), timeout=5)
            except TimeoutError:
                await ws.close()


def _set(stream: OutboundStream) -> None:
    if stream.ended is None:
        stream.ended = asyncio.Event()
    stream.ended.set()
