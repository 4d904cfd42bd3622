"""Recordings the simulated network makes of calls created with ``Record=true``: a WAV file
(16-bit PCM, 8 kHz, one channel per side when dual) served at Twilio's media URL, announced
by a signed recording status callback once the call has ended."""

from __future__ import annotations

import io
import math
import struct
import uuid
import wave
from dataclasses import dataclass

SAMPLE_RATE = 8000


@dataclass
class Recording:
    sid: str
    call_sid: str
    channels: int
    duration_s: int
    url: str
    callback: str

    def callback_params(self, account_sid: str) -> dict[str, str]:
        return {
            "AccountSid": account_sid,
            "CallSid": self.call_sid,
            "RecordingSid": self.sid,
            "RecordingUrl": self.url,
            "RecordingStatus": "completed",
            "RecordingDuration": str(self.duration_s),
            "RecordingChannels": str(self.channels),
            "RecordingSource": "OutboundAPI",
            "RecordingStartTime": "",
        }

    def to_ledger(self) -> dict[str, object]:
        return {"sid": self.sid, "channels": self.channels, "duration_s": self.duration_s}


def new_recording(base_url: str, account_sid: str, call_sid: str, channels: int,
                  duration_s: int, callback: str) -> Recording:  # fmt: skip
    sid = "RE" + uuid.uuid4().hex
    url = f"{base_url}/2010-04-01/Accounts/{account_sid}/Recordings/{sid}"
    return Recording(sid, call_sid, channels, max(duration_s, 1), url, callback)


def wav_bytes(recording: Recording) -> bytes:
    """A tone per channel (440 Hz the called party, 660 Hz ours): the same bytes each time."""
    frames = bytearray()
    tones = (440.0, 660.0)[: recording.channels]
    for n in range(recording.duration_s * SAMPLE_RATE):
        for tone in tones:
            sample = int(8000 * math.sin(2 * math.pi * tone * n / SAMPLE_RATE))
            frames += struct.pack("<h", sample)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(recording.channels)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(bytes(frames))
    return buffer.getvalue()
