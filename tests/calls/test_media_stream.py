"""The media stream (services/calls/media/stream.py) under any frames (hypothesis): whatever
arrives is refused clearly or handled; never an unhandled exception, never lost state. (CSV
files: tests/common/test_campaigns_leads.py; webhook parameters:
tests/calls/test_status_properties.py.)"""

from __future__ import annotations

import asyncio
import json
import string
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from libs.common.audio.wav import MulawWavWriter
from services.calls.media import protocol
from services.calls.media.agent import KeypadAgent
from services.calls.media.frames import CallInfo
from services.calls.media.line import Line
from services.calls.media.playout import Pacer, Playout
from services.calls.media.stream import MediaStream

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
EVENT = st.sampled_from([*sorted(protocol.EVENTS), "dance", "", "MEDIA"])


@st.composite
def frames(draw: st.DrawFn) -> str | bytes:
    """Mostly Twilio-shaped frames with wrong parts; some raw garbage, text or bytes."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.binary(max_size=300))
    if kind == 1:
        return draw(st.text(max_size=300))
    message: dict[str, Any] = {"event": draw(EVENT)}
    for key in draw(st.lists(st.sampled_from(["media", "dtmf", "mark", "stop", "start"]),
                             max_size=3)):  # fmt: skip
        message[key] = draw(JSON | st.fixed_dictionaries({
            "payload": st.text(string.ascii_letters + "+/=%", max_size=40),
            "digit": st.text(max_size=3), "name": JSON, "track": st.text(max_size=10),
        }))  # fmt: skip
    if draw(st.booleans()):
        message["streamSid"] = draw(JSON)
    return json.dumps(message)


def _started_stream(tmp: Path) -> tuple[MediaStream, list[str], list[object]]:
    """The state after a valid start, without a database: actions are recorded, not done."""
    sent: list[str] = []
    acted: list[object] = []

    async def send(text: str) -> None:
        sent.append(text)

    async def perform(action: object) -> None:
        acted.append(action)

    stream = MediaStream.__new__(MediaStream)
    MediaStream.__init__(stream, ctx=None, send=send)  # type: ignore[arg-type]
    stream.state = "started"
    stream.start = protocol.Start("MZ" + "a" * 32, "CA" + "b" * 32, 1, 1, "audio/x-mulaw", 8000)
    stream.recorder = MulawWavWriter(tmp / "fuzz.wav")
    stream.playout = Playout(Pacer(), stream.start.stream_sid, send)
    info = CallInfo(1, 1, stream.start.call_sid, "+14155550100")
    stream.line = Line(info, stream.playout, perform, lambda reason: None)
    stream.agent = KeypadAgent()
    stream.agent.line = stream.line
    return stream, sent, acted


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(frames(), min_size=1, max_size=20))
def test_no_frame_kills_a_stream(batch: list[str | bytes], tmp_path_factory: Any) -> None:
    async def scenario() -> None:
        stream, _, _ = _started_stream(tmp_path_factory.mktemp("frames"))
        for frame in batch:
            if isinstance(frame, str) and '"stop"' in frame[:20]:
                continue  # a real stop ends the stream (tested elsewhere); it would need the DB
            await stream.receive(frame)  # must not raise
            assert stream.state == "started"
        before = stream.recorder.data_bytes if stream.recorder else 0
        good = {"event": "media", "media": {"payload": "f39/fw==", "track": "inbound"}}
        await stream.receive(json.dumps(good))
        assert stream.recorder is not None and stream.recorder.data_bytes == before + 4

    asyncio.run(scenario())
