"""The README's example agent ("Writing an agent") runs as written: it is taken from the README,
put in a real stream (protocol, VAD, playout and pacer; actions recorded instead of written),
and driven as Twilio would drive it."""

from __future__ import annotations

import asyncio
import json
import re
import types
from pathlib import Path
from typing import Any

from libs.common.audio.wav import MulawWavWriter
from libs.common.settings import ROOT
from services.calls.media import protocol
from services.calls.media.agent import Agent
from services.calls.media.frames import CallInfo, RequestCallback, UpdateLead
from services.calls.media.line import Line
from services.calls.media.playout import Pacer, Playout
from services.calls.media.stream import MediaStream


def readme_agent() -> type[Agent]:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- example-agent -->\n```python\n(.*?)```", readme, re.S)
    assert match, "the README's example agent is missing"
    module = types.ModuleType("readme_example")
    exec(compile(match.group(1), "README.md", "exec"), module.__dict__)
    agents = [
        v
        for v in module.__dict__.values()
        if isinstance(v, type) and issubclass(v, Agent) and v is not Agent
    ]
    assert len(agents) == 1
    return agents[0]


def test_the_readme_agent_greets_and_acts_on_a_key(tmp_path: Path) -> None:
    sent: list[dict[str, Any]] = []
    acted: list[object] = []

    async def call() -> Line:
        def send(data: bytes) -> None:
            sent.append(json.loads(data))

        async def perform(action: object) -> None:
            acted.append(action)

        pacer = Pacer()
        pacer.start()
        stream = MediaStream.__new__(MediaStream)
        MediaStream.__init__(stream, ctx=None, send=send)  # type: ignore[arg-type]
        stream.state = "started"
        stream.start = protocol.Start("MZ" + "a" * 32, "CA" + "b" * 32, 1, 1, "audio/x-mulaw", 8000)
        stream.recorder = MulawWavWriter(tmp_path / "call.wav")
        stream.playout = Playout(pacer, stream.start.stream_sid, send)
        line = Line(
            CallInfo(1, 1, stream.start.call_sid, "+14155550100"),
            stream.playout,
            perform,
            lambda reason: None,
        )
        stream.line = line
        agent = readme_agent()()
        await stream._start_agent(agent)
        await asyncio.sleep(0.3)  # the greeting plays
        dtmf = {"event": "dtmf", "streamSid": stream.start.stream_sid, "dtmf": {"digit": "1"}}
        await stream.receive(json.dumps(dtmf))
        await asyncio.sleep(0.1)
        await pacer.stop()
        return line

    line = asyncio.run(call())
    events = [m["event"] for m in sent]
    # 0.3 s of greeting at real time (and 100 ms ahead), then the key cleared the rest.
    assert 15 <= events.count("media") <= 25 and events[-1] == "clear", events
    assert acted == [UpdateLead({"notes": "pressed 1 on the first call"}), RequestCallback()]
    assert [(r, t) for _, r, t in line.transcript_lines] == [
        ("agent", "Hello! Press 1 and we will call you back.")
    ]
