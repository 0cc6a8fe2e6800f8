"""Recordings the PBX uploaded to us (``POST .../calls/{call_id}/recording``) are already files.

Only files under settings.RECORDINGS_DIR are accepted: the path comes from our own database,
but a path check keeps a bug elsewhere from turning into "upload /etc/passwd to Bitrix24".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .errors import IntegrityMismatch, RecordingTooLarge, SourceRefused

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class LocalFile:
    path: Path
    size: int
    sha256: str


def open_local_recording(path: str | Path, *, root: Path, max_bytes: int,
                         expected_sha256: str | None = None, expected_size: int | None = None) -> LocalFile:
    resolved = Path(path).resolve()
    root = root.resolve()
    if not resolved.is_relative_to(root):
        raise SourceRefused("uploaded recording path is outside the recordings directory")
    if not resolved.is_file():
        raise SourceRefused("uploaded recording file no longer exists")
    size = resolved.stat().st_size
    if size > max_bytes:
        raise RecordingTooLarge(f"recording is {size} bytes, over the {max_bytes}-byte limit")
    if size == 0:
        raise SourceRefused("uploaded recording is empty")
    if expected_size is not None and size != expected_size:
        raise IntegrityMismatch(f"recording is {size} bytes, the PBX announced {expected_size}",
                                retryable=False)
    digest = hashlib.sha256()
    with open(resolved, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    sha = digest.hexdigest()
    if expected_sha256 and sha != expected_sha256.strip().lower():
        # The bytes are ours already; fetching them again cannot change them.
        raise IntegrityMismatch("uploaded recording sha256 does not match the announced value", retryable=False)
    return LocalFile(path=resolved, size=size, sha256=sha)
