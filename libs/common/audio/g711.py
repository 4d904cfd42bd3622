"""G.711 μ-law: the telephone's 8 kHz audio, in and out of 16-bit linear PCM.

``audioop`` is C and in the standard library of the pinned Python (3.11); it is deprecated
there and gone in 3.13, where the drop-in ``audioop-lts`` package replaces it. Everything else
goes through this module, so that swap is one import.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop


def to_pcm16(ulaw: bytes) -> bytes:
    return audioop.ulaw2lin(ulaw, 2)


def from_pcm16(pcm: bytes) -> bytes:
    return audioop.lin2ulaw(pcm, 2)


def rms(pcm: bytes) -> int:
    """Root mean square of 16-bit PCM: loudness."""
    return int(audioop.rms(pcm, 2))


def resample(pcm: bytes, from_rate: int, to_rate: int) -> bytes:
    """16-bit mono PCM from one sample rate to another (linear interpolation, with audioop's
    own filter state; enough for speech going down to the telephone's 8 kHz)."""
    converted, _ = audioop.ratecv(pcm, 2, 1, from_rate, to_rate, None)
    return bytes(converted)
