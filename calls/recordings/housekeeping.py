"""Temp files a killed worker left behind (a SIGKILL skips every ``finally``).

Only our own prefixes are touched: the PBX-upload spool shares RECORDINGS_DIR/tmp.
"""

from __future__ import annotations

import time
from pathlib import Path

OUR_TEMP_PATTERNS = ("dl-*.part", "cv-*.mp3")


def remove_stale_temp_files(work_dir: Path, *, older_than_s: float = 6 * 3600, now: float | None = None) -> int:
    tmp = work_dir / "tmp"
    if not tmp.is_dir():
        return 0
    cutoff = (now if now is not None else time.time()) - older_than_s
    removed = 0
    for pattern in OUR_TEMP_PATTERNS:
        for path in tmp.glob(pattern):
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue  # a concurrent run removed it
    return removed
