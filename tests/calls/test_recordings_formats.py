"""Audio recognition by content and conversion of non-wav/mp3 recordings with ffmpeg."""

from __future__ import annotations

import math
import os
import shutil
import struct
import subprocess
import wave
from pathlib import Path

import pytest

from calls.recordings import ConversionFailed, UnsupportedFormat
from calls.recordings.conf import recording_settings
from calls.recordings.formats import prepare_for_bitrix24, sniff, sniff_file

FFMPEG = shutil.which("ffmpeg")


def needs_ffmpeg():
    # CI installs ffmpeg (.ci/run); elsewhere a missing ffmpeg is reported, never silently passed.
    if FFMPEG is None:
        if os.environ.get("CI"):
            pytest.fail("ffmpeg is not installed on the CI machine")
        pytest.skip("ffmpeg is not installed here")


def write_wav(path: Path, seconds: float = 1.0, rate: int = 8000) -> Path:
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(int(seconds * rate))
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return path


def write_mp3_frames(path: Path, frames: int = 20) -> Path:
    # MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, no padding: 417-byte frames.
    header = bytes([0xFF, 0xFB, 0x90, 0x64])
    path.write_bytes((header + bytes(413)) * frames)
    return path


def make_ogg(tmp_path: Path, seconds: int = 2) -> Path:
    out = tmp_path / "call.ogg"
    subprocess.run([FFMPEG, "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                    f"sine=frequency=440:duration={seconds}", "-c:a", "libopus", str(out)], check=True)
    return out


def duration_seconds(path: Path) -> float:
    probe = shutil.which("ffprobe")
    out = subprocess.run([probe, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
                         check=True, capture_output=True, text=True)
    return float(out.stdout.strip())


def prepare(path: Path, work: Path, content_type: str = "", filename: str = ""):
    conf = recording_settings()
    return prepare_for_bitrix24(path, content_type=content_type, filename=filename or path.name,
                                ffmpeg_setting=conf.ffmpeg, work_dir=work, timeout=60)


@pytest.mark.parametrize(("head", "kind"), [
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", "wav"),
    (b"ID3\x04\x00\x00\x00\x00\x00\x00", "mp3"),
    (bytes([0xFF, 0xFB, 0x90, 0x64]), "mp3"),
    (bytes([0xFF, 0xF3, 0x40, 0xC4]), "mp3"),          # MPEG-2 Layer III (8 kHz telephony)
    (bytes([0xFF, 0xF1, 0x50, 0x80]), None),           # ADTS AAC: same sync bits, not mp3
    (b"OggS\x00\x02" + bytes(20), "ogg"),
    (b"\x1a\x45\xdf\xa3\x01\x00", "webm"),
    (b"fLaC\x00\x00", "flac"),
    (b"\x00\x00\x00\x20ftypM4A ", "m4a"),
    (b"#!AMR\n", "amr"),
    (b"<!DOCTYPE html><html>", None),
    (b"#EXTM3U\n#EXT-X-VERSION:3\n", None),
])
def test_audio_is_recognised_by_its_first_bytes(head, kind):
    assert sniff(head) == kind


def test_wav_passes_through_untouched_even_when_named_mp3(tmp_path):
    src = write_wav(tmp_path / "call.mp3")
    before = src.read_bytes()
    out = prepare(src, tmp_path / "work", content_type="audio/mpeg")
    assert (out.path, out.extension, out.converted_from, out.owned) == (src, "wav", None, False)
    assert src.read_bytes() == before


def test_mp3_passes_through_untouched(tmp_path):
    src = write_mp3_frames(tmp_path / "call.bin")
    out = prepare(src, tmp_path / "work", content_type="application/octet-stream")
    assert (out.path, out.extension, out.owned) == (src, "mp3", False)


def test_html_login_page_named_wav_is_refused_with_a_reason(tmp_path):
    src = tmp_path / "rec.wav"
    src.write_bytes(b"<!DOCTYPE html><html><body>Please log in</body></html>")
    with pytest.raises(UnsupportedFormat) as err:
        prepare(src, tmp_path / "work", content_type="audio/wav")
    assert "not a recognisable audio file" in err.value.reason
    assert not err.value.retryable


def test_ogg_is_converted_to_mp3_of_the_same_length(tmp_path):
    needs_ffmpeg()
    src = make_ogg(tmp_path, seconds=2)
    work = tmp_path / "work"
    out = prepare(src, work, content_type="audio/ogg")
    assert out.extension == "mp3" and out.owned and out.converted_from == "audio/ogg"
    assert out.path.parent == work
    assert sniff_file(out.path) == "mp3"
    assert abs(duration_seconds(out.path) - 2.0) < 0.2
    assert src.exists()  # the source is the caller's


def test_raw_gsm_declared_by_the_pbx_is_converted(tmp_path):
    needs_ffmpeg()
    src = tmp_path / "call.gsm"
    subprocess.run([FFMPEG, "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=1",
                    "-ar", "8000", "-ac", "1", "-c:a", "libgsm", "-f", "gsm", str(src)], check=True)
    assert sniff_file(src) is None
    out = prepare(src, tmp_path / "work", content_type="audio/x-gsm")
    assert out.extension == "mp3" and sniff_file(out.path) == "mp3"


def test_without_a_converter_the_reason_names_the_format(tmp_path, settings):
    settings.RECORDINGS_FFMPEG = str(tmp_path / "not-installed" / "ffmpeg")
    src = tmp_path / "call.ogg"
    src.write_bytes(b"OggS\x00\x02" + bytes(200))
    with pytest.raises(UnsupportedFormat) as err:
        prepare(src, tmp_path / "work", content_type="audio/ogg")
    assert err.value.reason.startswith(
        "recording format audio/ogg is not supported and no converter is installed"
    )
    assert not err.value.retryable


def test_a_broken_file_fails_conversion_and_leaves_nothing_behind(tmp_path):
    needs_ffmpeg()
    src = tmp_path / "call.ogg"
    src.write_bytes(b"OggS" + os.urandom(4000))
    work = tmp_path / "work"
    with pytest.raises(ConversionFailed, match="ffmpeg could not convert the ogg recording"):
        prepare(src, work, content_type="audio/ogg")
    assert list(work.iterdir()) == []


def test_stale_temp_files_of_a_killed_worker_are_removed_and_nothing_else(tmp_path):
    from calls.recordings.housekeeping import remove_stale_temp_files

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    old, fresh, spool = tmp / "dl-abc.part", tmp / "cv-def.mp3", tmp / "upload123.part"
    for p in (old, fresh, spool):
        p.write_bytes(b"x")
    os.utime(old, (1000, 1000))
    os.utime(spool, (1000, 1000))  # the PBX-upload spool is not ours to clean
    assert remove_stale_temp_files(tmp_path, older_than_s=3600) == 1
    assert sorted(p.name for p in tmp.iterdir()) == ["cv-def.mp3", "upload123.part"]


def test_a_bad_private_network_setting_fails_loudly(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.RECORDINGS_ALLOWED_PRIVATE_NETWORKS = ["10.0.0.0/8", "not-a-network"]
    with pytest.raises(ImproperlyConfigured, match="RECORDINGS_ALLOWED_PRIVATE_NETWORKS"):
        recording_settings()
