"""The media pipeline's own CPU per frame, without sockets: a started ``MediaStream`` per call
(the echo agent, recording, the playout) fed Twilio ``media`` frames in one process, and the
longest pause of the garbage collector meanwhile, with and without ``gc.freeze()`` (what the
media server does once started). CPU time, so it holds on a busy machine where the wall-clock
figures of ``make bench-media`` do not; the kernel's share of a frame (the socket's send and
receive, the same for the bare echo) is not in it.

    .venv/bin/python -m bench.media_frame_cost [--frames 200000 --streams 300]
"""

from __future__ import annotations

import argparse
import asyncio
import binascii
import gc
import tempfile
import time
from pathlib import Path
from typing import Any

from libs.common import models  # noqa: F401  (a worker's imports: what a full collection walks)
from libs.common.audio.wav import MulawWavWriter
from services.calls.media import protocol, server  # noqa: F401
from services.calls.media.agent import EchoAgent
from services.calls.media.frames import CallInfo
from services.calls.media.line import Line
from services.calls.media.playout import Pacer, Playout
from services.calls.media.stream import MediaStream


class _Context:
    """The part of ``MediaContext`` a started stream touches for each frame."""

    def __init__(self) -> None:
        self.pacer = Pacer()


def _started(ctx: Any, k: int, workdir: Path, send: Any) -> MediaStream:
    stream = MediaStream(ctx, send)
    sid, call_sid = "MZ" + f"{k:032x}", "CA" + f"{k:032x}"
    stream.start = protocol.Start(sid, call_sid, 1, k, "audio/x-mulaw", 8000)
    stream.recorder = MulawWavWriter(workdir / f"{k}.wav")
    stream.state = "started"
    stream.playout = Playout(ctx.pacer, sid, send)
    stream.line = Line(CallInfo(1, k, call_sid, "+14155550100"), stream.playout,
                       _no_action, lambda reason: None)  # fmt: skip
    stream.agent = EchoAgent()
    stream.agent.line = stream.line
    return stream


async def _no_action(action: Any) -> None:
    return None


async def measure(frames: int, streams: int) -> dict[str, float]:
    sent = 0

    def send(data: bytes) -> None:
        nonlocal sent
        sent += 1

    ctx = _Context()
    ctx.pacer.start()
    pauses: list[float] = []
    started_at = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started_at[0] = time.perf_counter()
        elif info["generation"] == 2:
            pauses.append(time.perf_counter() - started_at[0])

    gc.callbacks.append(on_gc)  # from the calls' start: a worker starts calls all day long
    with tempfile.TemporaryDirectory(prefix="frame-cost-") as tmp:
        calls = [_started(ctx, k, Path(tmp), send) for k in range(streams)]
        payload = binascii.b2a_base64(b"\xff" * 160, newline=False).decode()
        raw = [
            f'{{"event":"media","sequenceNumber":"{i + 2}","streamSid":"MZ{0:032x}",'
            f'"media":{{"track":"inbound","chunk":"{i + 1}","timestamp":"{i * 20}",'
            f'"payload":"{payload}"}}}}'
            for i in range(50)
        ]
        try:
            cpu = time.process_time()
            for i in range(frames):
                await calls[i % streams].receive(raw[i % 50])
            cpu = time.process_time() - cpu
        finally:
            gc.callbacks.remove(on_gc)
        # What one full collection costs the loop now, whenever the collector decides on one.
        collect = time.perf_counter()
        gc.collect()
        collect = time.perf_counter() - collect
        for call in calls:
            assert call.recorder is not None
            call.recorder.close()
    await ctx.pacer.stop()
    assert sent == frames, "every frame in is echoed out"
    return {
        "us_per_frame": round(cpu / frames * 1e6, 2),
        "full_collections": len(pauses),
        "longest_full_collection_ms": round(max(pauses, default=0.0) * 1000, 1),
        "full_collection_ms": round(collect * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.media_frame_cost")
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--streams", type=int, default=300)
    args = parser.parse_args()
    gc.collect()
    for frozen in (False, True):
        if frozen:
            gc.freeze()
        row = asyncio.run(measure(args.frames, args.streams))
        label = "gc.freeze()" if frozen else "no freeze  "
        print(f"{label}: {row['us_per_frame']:.2f} µs CPU per frame in (its echo out "
              f"included); a full collection pauses the loop {row['full_collection_ms']} ms "
              f"({row['full_collections']} happened, longest "
              f"{row['longest_full_collection_ms']} ms)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
