"""The agent the media benchmark's playback phase runs: it talks for the whole call (the
greeting over and over, queued at once), so what the caller receives is the pacer's work alone."""

from __future__ import annotations

from services.calls.media.agent import Agent, greeting_audio

#: Seconds of audio queued at the start: longer than any benchmark call.
TALK_S = 60


class TalkerAgent(Agent):
    local_barge_in = False
    local_vad = False

    async def start(self) -> None:
        self.line.play(greeting_audio() * TALK_S, label="talk")
