"""Twilio's side of inbound calls with Media Streams, many at once (asyncio + aiohttp).

Each simulated call does what Twilio does: POST the signed voice webhook, take the
``<Stream url>`` and ``<Parameter>``s from the TwiML, open the WebSocket signed against that
URL, send ``connected`` and ``start``, then one 20 ms μ-law ``media`` frame every 20 ms on a
fixed schedule (a late frame does not move the next one), then ``stop``. Like Twilio it plays
the media the service sends and echoes each ``mark`` once the audio queued before it has
played.

Media coming back is matched in order to the frames sent, so with an agent that answers each
frame with a frame (``EchoAgent``) or a bare echo server, the send-to-echo time is the
service's frame-handling latency as Twilio would see it. Used by the load test and
``bench/media_streams.py``. The WebSocket is ``ws_client`` (a send is one write, a received
frame goes to ``_Player.on_message`` as it is read): the load generator shares the cores with
the server it measures, so it must cost as little per frame as it can.
"""

from __future__ import annotations

import asyncio
import base64
import heapq
import itertools
import json
import math
import secrets
import struct
import time
import xml.etree.ElementTree as ET
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

from libs.common.audio import g711
from libs.telephony.twilio_signature import sign
from simulators.twilio.ws_client import WebSocket

FRAME_S = 0.020
#: A frame sent later than this after its schedule is recorded (``StreamResult.late_sends``).
LATE_SEND_MS = 2.0
FRAME_BYTES = 160
SILENCE = b"\xff"


@dataclass(frozen=True)
class Target:
    """Where the calls go. With ``voice_url`` None the WebSocket is dialled directly, unsigned
    unless ``auth_token`` is set (a bare echo server has no webhook)."""

    ws_url: str
    voice_url: str | None = None
    auth_token: str | None = None
    to: str = "+14155550000"
    #: The Twilio simulator's base URL: each call is registered there first, as Twilio knows
    #: the calls it delivers, so the service's REST updates (transfers, hang-ups) find it.
    twilio_sim: str | None = None


def _floats() -> array[float]:
    return array("d")


@dataclass
class StreamResult:
    index: int
    call_sid: str = ""
    sent: int = 0
    #: Media frames the service sent back, and the marks it sent.
    received_media: int = 0
    received_marks: int = 0
    #: Send-to-echo times of the frames that came back, in milliseconds, and when each of
    #: those frames was sent (time.monotonic(): one clock for every process on the host).
    #: Per-frame series are arrays of C doubles, not lists: a full garbage collection walks
    #: every item of every list, and 500 calls' lists paused the load generator for 25 ms,
    #: which it then measured as the service's jitter (an array holds no objects to walk).
    latencies_ms: array[float] = field(default_factory=_floats)
    echoed_sent_at: array[float] = field(default_factory=_floats)
    #: When each media frame from the service arrived (time.monotonic()): its pacing.
    arrivals: array[float] = field(default_factory=_floats)
    #: When the voice webhook was posted (the call answered), and when the first media frame
    #: from the service arrived: what the caller waits before hearing the agent.
    answered_at: float = 0.0
    first_audio_at: float = 0.0
    #: When each of the caller's speech segments ended (last loud frame sent), and when each
    #: ``clear`` from the service arrived.
    speech_ended_at: list[float] = field(default_factory=list)
    clears_at: list[float] = field(default_factory=list)
    #: Frames this client sent late (its own loop busy or its process not running), as
    #: (when sent, how late in ms), for those over LATE_SEND_MS: the load generator shares the
    #: cores with the server it measures, and a gap it measures may be its own.
    late_sends: list[tuple[float, float]] = field(default_factory=list)
    #: When each media frame was sent (time.monotonic()).
    sent_at: array[float] = field(default_factory=_floats)
    #: The service closed the socket before we sent ``stop``: a dropped call.
    closed_early: bool = False
    error: str | None = None
    opened_at: float = 0.0
    closed_at: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and not self.closed_early


def speech_frame() -> bytes:
    """20 ms of a voice-like sound (two tones, loud): what VADs take for speech."""
    samples = [
        int(
            5000 * math.sin(2 * math.pi * 220 * n / 8000)
            + 3000 * math.sin(2 * math.pi * 660 * n / 8000)
        )
        for n in range(FRAME_BYTES)
    ]
    return g711.from_pcm16(struct.pack(f"<{FRAME_BYTES}h", *samples))


def caller_number(index: int) -> str:
    return f"+1415{7000000 + index:07d}"


def stream_from_twiml(twiml: str) -> tuple[str, dict[str, str]]:
    stream = ET.fromstring(twiml).find("./Connect/Stream")
    if stream is None:
        raise ValueError(f"TwiML has no <Connect><Stream>: {twiml[:200]}")
    params = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
    return stream.get("url", ""), params


async def _answer(session: aiohttp.ClientSession, target: Target, call_sid: str,
                  caller: str) -> tuple[str, dict[str, str]]:  # fmt: skip
    assert target.voice_url and target.auth_token
    form = {"CallSid": call_sid, "AccountSid": "AC" + "0" * 32, "From": caller,
            "To": target.to, "CallStatus": "ringing", "Direction": "inbound"}  # fmt: skip
    headers = {"X-Twilio-Signature": sign(target.auth_token, target.voice_url, form)}
    async with session.post(target.voice_url, data=form, headers=headers) as response:
        text = await response.text()
        if response.status != 200:
            raise RuntimeError(f"voice webhook answered {response.status}: {text[:200]}")
    return stream_from_twiml(text)


def _start_frame(stream_sid: str, call_sid: str, params: dict[str, str]) -> str:
    return json.dumps({
        "event": "start", "sequenceNumber": "1", "streamSid": stream_sid,
        "start": {"streamSid": stream_sid, "callSid": call_sid, "accountSid": "AC" + "0" * 32,
                  "tracks": ["inbound"], "customParameters": params,
                  "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                  "channels": 1}},
    })  # fmt: skip


class _Player:
    """Twilio's playback of what the service sends: marks come back when their turn plays."""

    def __init__(self, stream_sid: str, result: StreamResult, sent_at: array[float]) -> None:
        self.stream_sid, self.result, self.sent_at = stream_sid, result, sent_at
        self.ws: WebSocket | None = None
        self.loop = asyncio.get_running_loop()
        self.playback_end = 0.0

    def on_message(self, text: str, now: float) -> None:
        # Cheap check first: at full load this runs thousands of times a second.
        if '"media"' in text[:40]:
            k = self.result.received_media
            self.result.received_media += 1
            self.result.arrivals.append(now)
            if not k:
                self.result.first_audio_at = now
            if k < len(self.sent_at):
                self.result.latencies_ms.append((now - self.sent_at[k]) * 1000)
                self.result.echoed_sent_at.append(self.sent_at[k])
            self.playback_end = max(self.loop.time(), self.playback_end) + FRAME_S
            return
        message = json.loads(text)
        if message.get("event") == "mark":
            self.result.received_marks += 1
            name = message.get("mark", {}).get("name", "")
            self.loop.call_at(max(self.loop.time(), self.playback_end), self._echo_mark, name)
        elif message.get("event") == "clear":
            self.result.clears_at.append(now)
            self.playback_end = self.loop.time()

    def _echo_mark(self, name: str) -> None:
        if self.ws is not None and not self.ws.closed:
            mark = {"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}}
            self.ws.send_text(json.dumps(mark))


class _Frames:
    """One call's media frames, each sent on its own 20 ms schedule from ``t0`` (a late frame
    does not move the next one); ``done`` resolves after the last, or when the socket closed."""

    def __init__(self, ws: WebSocket, stream_sid: str, result: StreamResult,
                 sent_at: array[float], count: int, payload: str, spoken: str,
                 speaking: set[int], ends: set[int]) -> None:  # fmt: skip
        self.ws, self.stream_sid, self.result, self.sent_at = ws, stream_sid, result, sent_at
        self.count, self.payload, self.spoken = count, payload, spoken
        self.speaking, self.ends = speaking, ends
        self.i = 0
        self.t0 = 0.0
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def send_next(self) -> float | None:
        """Send frame i; when the next one is due (loop time), or None when finished."""
        if self.ws.closed:
            self.result.closed_early = True
            self.i = self.count
        i = self.i
        if i < self.count:
            now = time.monotonic()
            self.sent_at.append(now)
            # The loop's clock is time.monotonic() (asyncio's default loop): one clock.
            late_ms = (now - (self.t0 + i * FRAME_S)) * 1000
            if late_ms > LATE_SEND_MS:
                self.result.late_sends.append((now, late_ms))
            payload = self.spoken if i in self.speaking else self.payload
            self.ws.send_text(
                f'{{"event":"media","sequenceNumber":"{i + 2}","streamSid":"{self.stream_sid}",'
                f'"media":{{"track":"inbound","chunk":"{i + 1}","timestamp":"{i * 20}",'
                f'"payload":"{payload}"}}}}'
            )
            if i in self.ends:
                self.result.speech_ended_at.append(self.sent_at[-1])
            self.result.sent += 1
            self.i = i = i + 1
        if i >= self.count:
            if not self.done.done():
                self.done.set_result(None)
            return None
        return self.t0 + i * FRAME_S


class _Metronome:
    """Sends every call's due frame from one task per event loop: a sleep per frame per call
    (25,000 a second at 500 calls) cost the load generator more CPU than the sends."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.heap: list[tuple[float, int, _Frames]] = []
        self.order = itertools.count()
        self.waiter: asyncio.Future[None] | None = None
        self.sleep_until = float("inf")
        self.task = loop.create_task(self._run())

    def add(self, frames: _Frames, t0: float) -> None:
        frames.t0 = t0
        heapq.heappush(self.heap, (t0, next(self.order), frames))
        if t0 < self.sleep_until and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def _run(self) -> None:
        heap = self.heap
        while True:
            now = self.loop.time()
            while heap and heap[0][0] <= now:
                _, _, frames = heapq.heappop(heap)
                due = frames.send_next()
                if due is not None:
                    heapq.heappush(heap, (due, next(self.order), frames))
                now = self.loop.time()
            self.waiter = self.loop.create_future()
            timer = None
            self.sleep_until = heap[0][0] if heap else float("inf")
            if heap:
                timer = self.loop.call_at(self.sleep_until, _wake, self.waiter)
            try:
                await self.waiter
            finally:
                if timer is not None:
                    timer.cancel()
                self.sleep_until = float("-inf")


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


_METRONOMES: dict[asyncio.AbstractEventLoop, _Metronome] = {}


def _metronome(loop: asyncio.AbstractEventLoop) -> _Metronome:
    metronome = _METRONOMES.get(loop)
    if metronome is None or metronome.task.done():
        for old in [k for k in _METRONOMES if k.is_closed()]:
            del _METRONOMES[old]
        metronome = _METRONOMES[loop] = _Metronome(loop)
    return metronome


async def run_stream(session: aiohttp.ClientSession, target: Target, index: int,
                     seconds: float, digits: str = "",
                     speech: Sequence[tuple[float, float]] = ()) -> StreamResult:  # fmt: skip
    """One call: ``seconds`` of audio at 50 frames/s (quiet, but speech in each ``(start_s,
    length_s)`` of ``speech``), then ``digits`` on the keypad, then stop."""
    result = StreamResult(index, call_sid="CA" + secrets.token_hex(16))
    stream_sid = "MZ" + secrets.token_hex(16)
    ws_url, params = target.ws_url, dict[str, str]()
    try:
        result.answered_at = time.monotonic()
        if target.twilio_sim:
            registration = {"sid": result.call_sid, "from": caller_number(index), "to": target.to}
            async with session.post(f"{target.twilio_sim}/_sim/inbound", json=registration):
                pass
        if target.voice_url:
            ws_url, params = await _answer(session, target, result.call_sid, caller_number(index))
        headers = {}
        if target.auth_token:
            headers["X-Twilio-Signature"] = sign(target.auth_token, ws_url, {})
        player = _Player(stream_sid, result, result.sent_at)
        ws = player.ws = await WebSocket.connect(ws_url, headers, player.on_message)
        try:
            result.opened_at = time.monotonic()
            await _talk(ws, player, params, seconds, digits, speech)
            result.closed_at = time.monotonic()
        finally:
            ws.abort()
    except (aiohttp.ClientError, RuntimeError, ValueError, OSError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    return result


async def _talk(ws: WebSocket, player: _Player, params: dict[str, str], seconds: float,
                digits: str, speech: Sequence[tuple[float, float]]) -> None:  # fmt: skip
    stream_sid, result, sent_at = player.stream_sid, player.result, player.sent_at
    ws.send_text(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
    ws.send_text(_start_frame(stream_sid, result.call_sid, params))
    # A quiet line (μ-law silence): the service's VAD must not hear speech in it. Tests that
    # need speech send it themselves.
    payload = base64.b64encode(SILENCE * FRAME_BYTES).decode()
    spoken = base64.b64encode(speech_frame()).decode()
    speaking = {round((start + k * FRAME_S) / FRAME_S) for start, length in speech
                for k in range(round(length / FRAME_S))}  # fmt: skip
    ends = {round((start + length) / FRAME_S) - 1 for start, length in speech}
    loop = asyncio.get_running_loop()
    frames = _Frames(ws, stream_sid, result, sent_at, round(seconds / FRAME_S), payload, spoken,
                     speaking, ends)  # fmt: skip
    _metronome(loop).add(frames, loop.time())
    await frames.done
    for digit in digits:
        if not ws.closed:
            dtmf = {"track": "inbound_track", "digit": digit}
            ws.send_text(json.dumps({"event": "dtmf", "streamSid": stream_sid, "dtmf": dtmf}))
    if ws.closed:
        result.closed_early = True
    else:
        # Let the last echoes arrive before hanging up, as a caller's audio would finish.
        await asyncio.sleep(0.2)
        ws.send_text(json.dumps({"event": "stop", "streamSid": stream_sid,
                                 "stop": {"callSid": result.call_sid}}))  # fmt: skip
    try:
        # Switchboard closes the socket after stop; a bare echo server does not.
        await asyncio.wait_for(asyncio.shield(ws.done), timeout=2)
    except TimeoutError:
        await ws.close()


async def run_streams(target: Target, count: int, seconds: float, ramp_s: float = 1.0,
                      digits: str = "", first_index: int = 0, end_together: bool = False,
                      speech: Sequence[tuple[float, float]] = ()
                      ) -> list[StreamResult]:  # fmt: skip
    """``count`` concurrent calls, their starts spread over ``ramp_s`` (Twilio's calls do not
    all arrive in the same millisecond, and a synchronised start measures a thundering herd).
    Each call streams ``seconds``; with ``end_together`` the early ones stream longer so that
    all hang up at once and every call is up for the last ``seconds``."""
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, connect=30, sock_connect=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(i: int) -> StreamResult:
            offset = ramp_s * i / max(count, 1)
            await asyncio.sleep(offset)
            length = seconds + (ramp_s - offset if end_together else 0.0)
            return await run_stream(session, target, first_index + i, length, digits, speech)

        return list(await asyncio.gather(*(one(i) for i in range(count))))


def peak_open(results: list[StreamResult]) -> int:
    """Most sockets open at the same time, from each stream's open and close instants."""
    edges = sorted(
        [(r.opened_at, 1) for r in results if r.opened_at]
        + [(r.closed_at, -1) for r in results if r.closed_at],
        key=lambda e: (e[0], e[1]),
    )
    peak = level = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    return peak
