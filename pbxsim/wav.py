"""Valid PCM WAV recordings of any length, streamed, written with the stdlib ``wave`` module.

The header is computed up front from the final frame count (``setnframes``), so ``wave`` never
has to seek back to patch it: the bytes can go straight onto a socket.
"""

from __future__ import annotations

import hashlib
import math
import struct
import wave
from collections.abc import Iterator

SAMPLE_RATE = 8000
SAMPLE_WIDTH = 2
# Tones whose period is a whole number of samples at 8 kHz: one period is computed, then repeated.
TONES_HZ = (400, 500, 800, 1000)
HEADER_BYTES = 44


class _Sink:
    """A write-only file for ``wave``: collects bytes for the generator to hand out."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.written = 0

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.written += len(data)
        return len(data)

    def tell(self) -> int:
        return self.written

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


def _period(tone_hz: int) -> bytes:
    samples = SAMPLE_RATE // tone_hz
    return b"".join(
        struct.pack("<h", int(12000 * math.sin(2 * math.pi * i / samples))) for i in range(samples)
    )


def wav_size(seconds: float) -> int:
    return HEADER_BYTES + int(seconds * SAMPLE_RATE) * SAMPLE_WIDTH


def iter_wav(seconds: float, *, tone_hz: int = 400, chunk_frames: int = 8000) -> Iterator[bytes]:
    """Yield a mono 16-bit 8 kHz WAV of ``seconds`` (a tone), ``chunk_frames`` frames at a time."""
    if tone_hz not in TONES_HZ:
        raise ValueError(f"tone_hz must be one of {TONES_HZ}")
    total = int(seconds * SAMPLE_RATE)
    period = _period(tone_hz)
    frames_per_period = len(period) // SAMPLE_WIDTH
    chunk_frames = max(frames_per_period, chunk_frames - chunk_frames % frames_per_period)
    block = period * (chunk_frames // frames_per_period)
    sink = _Sink()
    writer = wave.open(sink, "wb")  # type: ignore[arg-type]  # wave only needs write/tell/flush
    writer.setnchannels(1)
    writer.setsampwidth(SAMPLE_WIDTH)
    writer.setframerate(SAMPLE_RATE)
    writer.setnframes(total)
    writer.writeframesraw(b"")  # header now, with the final sizes
    yield sink.drain()
    remaining = total
    while remaining > 0:
        frames = min(remaining, chunk_frames)
        writer.writeframesraw(block[: frames * SAMPLE_WIDTH])
        remaining -= frames
        yield sink.drain()
    writer.close()  # sizes match what was announced: nothing to patch, nothing written
    tail = sink.drain()
    if tail:
        yield tail


def wav_bytes(seconds: float, *, tone_hz: int = 400) -> bytes:
    return b"".join(iter_wav(seconds, tone_hz=tone_hz))


def wav_sha256(seconds: float, *, tone_hz: int = 400) -> str:
    digest = hashlib.sha256()
    for chunk in iter_wav(seconds, tone_hz=tone_hz):
        digest.update(chunk)
    return digest.hexdigest()
