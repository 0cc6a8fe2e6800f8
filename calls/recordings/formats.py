"""Recognise audio by its first bytes and make it something Bitrix24 accepts (wav or mp3).

Bitrix24's attachRecord takes only ``.wav`` and ``.mp3``. Names and Content-Types from a PBX
are hints at best (``.wav`` files holding HTML login pages are a classic), so the decision is
made on magic bytes; the declared type only helps for headerless formats such as raw GSM.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import ConversionFailed, UnsupportedFormat

logger = logging.getLogger(__name__)

PASS_THROUGH = {"wav", "mp3"}

# Our name -> (MIME for messages, ffmpeg demuxer). The demuxer is forced so ffmpeg never
# auto-detects a playlist or concat script in a hostile file and starts opening URLs.
CONVERTIBLE: dict[str, tuple[str, str]] = {
    "ogg": ("audio/ogg", "ogg"),
    "webm": ("audio/webm", "matroska"),
    "flac": ("audio/flac", "flac"),
    "m4a": ("audio/mp4", "mov"),
    "amr": ("audio/amr", "amr"),
    "aiff": ("audio/aiff", "aiff"),
    "au": ("audio/basic", "au"),
    "gsm": ("audio/gsm", "gsm"),
}
MIME = {"wav": "audio/wav", "mp3": "audio/mpeg", **{k: v[0] for k, v in CONVERTIBLE.items()}}

# Headerless formats can only be known from what the PBX declared.
_DECLARED_ONLY = {"audio/gsm": "gsm", "audio/x-gsm": "gsm", ".gsm": "gsm"}


def sniff(head: bytes) -> str | None:
    """Audio kind from the first bytes of a file, or None."""
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:3] == b"ID3" or _is_mpeg_layer3_frame(head):
        return "mp3"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    if head[:4] == b"fLaC":
        return "flac"
    if len(head) >= 8 and head[4:8] == b"ftyp":
        return "m4a"
    if head[:5] == b"#!AMR":
        return "amr"
    if len(head) >= 12 and head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:4] == b".snd":
        return "au"
    return None


def _is_mpeg_layer3_frame(head: bytes) -> bool:
    # 11 sync bits, then version != reserved, layer bits == 01 (Layer III). ADTS AAC has layer 00.
    if len(head) < 3 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version = (head[1] >> 3) & 0x3
    layer = (head[1] >> 1) & 0x3
    bitrate = head[2] >> 4
    return version != 1 and layer == 1 and bitrate not in (0, 0xF)


def sniff_file(path: Path) -> str | None:
    with open(path, "rb") as fh:
        return sniff(fh.read(64))


def declared_kind(content_type: str, filename: str) -> str | None:
    ctype = content_type.split(";")[0].strip().lower()
    if ctype in _DECLARED_ONLY:
        return _DECLARED_ONLY[ctype]
    suffix = Path(filename).suffix.lower()
    return _DECLARED_ONLY.get(suffix)


def describe(content_type: str, filename: str, kind: str | None) -> str:
    if kind:
        return MIME.get(kind, kind)
    return content_type.split(";")[0].strip() or (Path(filename).suffix.lstrip(".") or "unknown")


@dataclass(frozen=True)
class PreparedAudio:
    path: Path
    extension: str      # "wav" | "mp3"
    converted_from: str | None
    owned: bool         # True: a file we created and must delete


def find_ffmpeg(setting: str) -> str | None:
    return shutil.which(setting) if setting else None


def prepare_for_bitrix24(path: Path, *, content_type: str, filename: str, ffmpeg_setting: str,
                         work_dir: Path, timeout: float) -> PreparedAudio:
    kind = sniff_file(path)
    if kind in PASS_THROUGH:
        return PreparedAudio(path=path, extension=kind, converted_from=None, owned=False)
    if kind is None:
        kind = declared_kind(content_type, filename)
    label = describe(content_type, filename, kind)
    if kind is None:
        raise UnsupportedFormat(
            f"the recording is not a recognisable audio file (declared {label}); "
            "Bitrix24 accepts wav and mp3"
        )
    ffmpeg = find_ffmpeg(ffmpeg_setting)
    if ffmpeg is None:
        raise UnsupportedFormat(
            f"recording format {label} is not supported and no converter is installed "
            "(Bitrix24 accepts wav and mp3; install ffmpeg on the worker)"
        )
    return PreparedAudio(path=convert_to_mp3(path, kind, ffmpeg=ffmpeg, work_dir=work_dir, timeout=timeout),
                         extension="mp3", converted_from=label, owned=True)


def convert_to_mp3(src: Path, kind: str, *, ffmpeg: str, work_dir: Path, timeout: float) -> Path:
    work_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="cv-", suffix=".mp3", dir=work_dir)
    os.close(fd)  # ffmpeg -y overwrites it; mkstemp is only for the unique name
    out = Path(name)
    _mime, demuxer = CONVERTIBLE[kind]
    cmd = [
        ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-protocol_whitelist", "file", "-f", demuxer, "-i", str(src),
        "-vn", "-map_metadata", "-1", "-codec:a", "libmp3lame", "-b:a", "64k", "-f", "mp3", str(out),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)  # noqa: S603
    except subprocess.TimeoutExpired as exc:
        out.unlink(missing_ok=True)
        raise ConversionFailed(f"converting the {kind} recording to mp3 took longer than {int(timeout)} s",
                               retryable=True) from exc
    if proc.returncode != 0 or not out.exists() or out.stat().st_size == 0:
        out.unlink(missing_ok=True)
        detail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise ConversionFailed(f"ffmpeg could not convert the {kind} recording to mp3: {detail[0][:200]}")
    if sniff_file(out) != "mp3":
        out.unlink(missing_ok=True)
        raise ConversionFailed(f"ffmpeg did not produce mp3 from the {kind} recording")
    logger.info("converted %s recording to mp3 (%d bytes)", kind, out.stat().st_size)
    return out
