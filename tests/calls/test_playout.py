"""The paced playout: one pacer task per process sends every stream's frames on a monotonic
schedule LEAD_S ahead of the caller's ear; a late tick is caught up without a burst."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import time

from services.calls.media.frames import FRAME_BYTES
from services.calls.media.playout import EARLY_S, LEAD_S, MIN_GAP_S, Pacer, Playout

SID = "MZ" + "0" * 32
FRAME_S = 0.020


class Caller:
    """Twilio's side of the socket: what it received, and when (loop time)."""

    def __init__(self) -> None:
        self.messages: list[tuple[float, dict[str, object]]] = []

    def send(self, data: bytes) -> None:
        self.messages.append((asyncio.get_running_loop().time(), json.loads(data)))

    def media_times(self) -> list[float]:
        return [t for t, m in self.messages if m["event"] == "media"]


async def _play(seconds: float, stall_at: float | None = None, stall_s: float = 0.0) -> Caller:
    pacer, caller = Pacer(), Caller()
    pacer.start()
    playout = Playout(pacer, SID, caller.send)
    frames = round(seconds / FRAME_S)
    playout.play(b"\x7f" * FRAME_BYTES * frames, label="clip")
    playout.mark("end")
    loop = asyncio.get_running_loop()
    if stall_at is not None:
        await asyncio.sleep(stall_at)
        time.sleep(stall_s)  # the loop is busy: every tick due meanwhile is late
    deadline = loop.time() + seconds + 2
    while playout.playing and loop.time() < deadline:
        await asyncio.sleep(0.01)
    await pacer.stop()
    return caller


def test_frames_leave_paced_with_the_lead_ahead_and_marks_after_their_audio() -> None:
    caller = asyncio.run(_play(1.0))
    times = caller.media_times()
    assert len(times) == 50
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Never a burst: the lead fills at one frame per MIN_GAP_S, then 20 ms apart.
    assert min(gaps) >= MIN_GAP_S - EARLY_S - 0.001
    # The whole clip left LEAD_S before the caller will have heard it (give or take a tick).
    assert abs((times[-1] - times[0]) - (1.0 - FRAME_S - LEAD_S)) < 0.05
    assert caller.messages[-1][1] == {"event": "mark", "streamSid": SID, "mark": {"name": "end"}}


def test_a_late_tick_is_caught_up_without_a_burst() -> None:
    caller = asyncio.run(_play(2.0, stall_at=0.5, stall_s=0.06))
    times = caller.media_times()
    assert len(times) == 100
    gaps = [b - a for a, b in itertools.pairwise(times)]
    stall = gaps.index(max(gaps))
    assert gaps[stall] > 0.06  # the stall itself: what no schedule can undo
    assert min(gaps) >= MIN_GAP_S - EARLY_S - 0.001  # but no back-to-back frames after it
    # ... and the schedule was caught up, a few milliseconds a frame: a pacer that restarted
    # its schedule after the stall would send the next frames 20 ms apart, not closer.
    catching_up = [gap for gap in gaps[stall + 1 : stall + 15] if gap < 0.017]
    assert len(catching_up) >= 5


def test_clear_is_sent_at_once_and_drops_what_was_queued() -> None:
    async def scenario() -> tuple[Caller, int]:
        pacer, caller = Pacer(), Caller()
        pacer.start()
        playout = Playout(pacer, SID, caller.send)
        playout.play(b"\x7f" * FRAME_BYTES * 50, label="clip")
        await asyncio.sleep(0.2)
        heard = playout.clear()
        await asyncio.sleep(0.1)
        await pacer.stop()
        return caller, heard.ms

    caller, heard_ms = asyncio.run(scenario())
    events = [m["event"] for _, m in caller.messages]
    assert events[-1] == "clear" and set(events[:-1]) == {"media"}
    # Sent ahead by the lead, so about 200 ms of it were heard, not all that was sent.
    assert 100 <= heard_ms <= 260


def test_a_long_clip_leaves_frame_by_frame_in_order_and_padded() -> None:
    """A clip is queued whole and cut into frames as they leave (a minute of speech is one
    queue entry, not 3,000 for the collector to walk): what leaves is the clip, in order,
    its last frame padded with silence, then the mark queued after it."""

    async def scenario() -> tuple[Caller, list[int]]:
        pacer, caller = Pacer(), Caller()
        pacer.start()
        playout = Playout(pacer, SID, caller.send)
        clip = bytes(range(256)) * 2 + b"\x01" * 20  # 3.325 frames
        playout.play(clip, label="clip")
        playout.mark("clip-end")
        playout.play(b"\x02" * FRAME_BYTES, label="next")
        pending = [playout.pending_frames]
        while playout.playing:
            await asyncio.sleep(0.005)
            pending.append(playout.pending_frames)
        await pacer.stop()
        return caller, pending

    caller, pending = asyncio.run(scenario())
    sent = [m for _, m in caller.messages]
    media = [
        base64.b64decode(m["media"]["payload"])  # type: ignore[index]
        for m in sent
        if m["event"] == "media"
    ]
    clip = bytes(range(256)) * 2 + b"\x01" * 20
    assert media[:4] == [
        clip[:160],
        clip[160:320],
        clip[320:480],
        clip[480:] + b"\xff" * (4 * FRAME_BYTES - len(clip)),
    ]
    assert media[4:] == [b"\x02" * FRAME_BYTES]
    assert [m["event"] for m in sent] == ["media"] * 4 + ["mark", "media"]
    assert pending[0] == 5 and pending[-1] == 0
    assert pending == sorted(pending, reverse=True)
