"""WAV files of G.711 μ-law audio at 8 kHz, mono: what Twilio streams, stored as received.

Python's ``wave`` module writes PCM only, so the header is written here: a ``fmt `` chunk with
format tag 7 (μ-law), the ``fact`` chunk non-PCM formats require, then ``data``. Sizes are
placeholders until ``close`` fills them in, so a crash leaves a file a repair can still read.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

SAMPLE_RATE = 8000
FORMAT_MULAW = 7
#: RIFF header + fmt chunk (18-byte body) + fact chunk + data chunk header.
HEADER_BYTES = 12 + (8 + 18) + (8 + 4) + 8


def header(data_bytes: int) -> bytes:
    fmt = struct.pack("<HHIIHHH", FORMAT_MULAW, 1, SAMPLE_RATE, SAMPLE_RATE, 1, 8, 0)
    return b"".join(
        [
            b"RIFF",
            struct.pack("<I", HEADER_BYTES - 8 + data_bytes + (data_bytes & 1)),
            b"WAVE",
            b"fmt ",
            struct.pack("<I", len(fmt)),
            fmt,
            b"fact",
            struct.pack("<II", 4, data_bytes),  # samples: one byte each
            b"data",
            struct.pack("<I", data_bytes),
        ]
    )


class MulawWavWriter:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.data_bytes = 0
        self._file: BinaryIO | None = path.open("wb")
        self._file.write(header(0))

    def write(self, audio: bytes) -> None:
        if self._file is not None:
            self._file.write(audio)
            self.data_bytes += len(audio)

    def close(self) -> None:
        if self._file is None:
            return
        if self.data_bytes & 1:
            self._file.write(b"\0")  # RIFF chunks are word-aligned
        self._file.seek(0)
        self._file.write(header(self.data_bytes))
        self._file.close()
        self._file = None

    @property
    def duration_ms(self) -> int:
        return self.data_bytes * 1000 // SAMPLE_RATE


def read(path: Path) -> tuple[int, int, bytes]:
    """(format tag, sample rate, audio) of a WAV file; ValueError if it is not one."""
    raw = path.read_bytes()
    if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise ValueError(f"{path.name} is not a RIFF/WAVE file")
    offset, fmt, rate = 12, None, 0
    while offset + 8 <= len(raw):
        chunk, size = raw[offset : offset + 4], struct.unpack("<I", raw[offset + 4 : offset + 8])[0]
        body = raw[offset + 8 : offset + 8 + size]
        if chunk == b"fmt ":
            fmt, _, rate = struct.unpack("<HHI", body[:8])
        elif chunk == b"data":
            if fmt is None:
                raise ValueError(f"{path.name}: data before fmt")
            return fmt, rate, body
        offset += 8 + size + (size & 1)
    raise ValueError(f"{path.name} has no data chunk")
