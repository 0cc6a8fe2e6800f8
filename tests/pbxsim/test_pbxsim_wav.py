"""Generated recordings are valid WAV files of the announced size, streamed in chunks."""

from __future__ import annotations

import io
import wave

import pytest

from pbxsim.wav import SAMPLE_RATE, iter_wav, wav_bytes, wav_sha256, wav_size


@pytest.mark.parametrize("seconds", [0, 0.01, 1, 7.5])
def test_wav_is_readable_and_has_the_announced_length(seconds):
    data = wav_bytes(seconds)
    assert len(data) == wav_size(seconds)
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, SAMPLE_RATE)
        assert w.getnframes() == int(seconds * SAMPLE_RATE)
        assert len(w.readframes(w.getnframes())) == int(seconds * SAMPLE_RATE) * 2


def test_long_recording_streams_in_bounded_chunks():
    chunks = list(iter_wav(120, chunk_frames=8000))
    assert max(len(c) for c in chunks) <= 16000
    assert sum(len(c) for c in chunks) == wav_size(120)


def test_tones_give_different_audio_and_a_stable_hash():
    assert wav_bytes(1, tone_hz=400) != wav_bytes(1, tone_hz=800)
    assert wav_sha256(3, tone_hz=500) == wav_sha256(3, tone_hz=500)


def test_unknown_tone_is_refused():
    with pytest.raises(ValueError):
        wav_bytes(1, tone_hz=440)
