"""Heartbeats of the processes that have no HTTP port: Celery workers (a file per node) and beat
(a key in the shared cache, so the web's readiness can report it from another container)."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
from pathlib import Path

from django.core.cache import cache

from ops.conf import ops_settings

BEAT_KEY = "ops:heartbeat:beat"
_UNSAFE = re.compile(r"[^A-Za-z0-9@._-]")


def worker_heartbeat_path(node_name: str) -> Path:
    return ops_settings().heartbeat_dir / f"worker-{_UNSAFE.sub('_', node_name)}.heartbeat"


def touch_worker_heartbeat(node_name: str) -> None:
    path = worker_heartbeat_path(node_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(str(time.time()))
    os.replace(tmp, path)


def remove_worker_heartbeat(node_name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        worker_heartbeat_path(node_name).unlink()


def worker_heartbeat_ages(node_name: str | None = None) -> dict[str, float]:
    """Seconds since each matching worker's last heartbeat; default: the nodes of this host."""
    directory = ops_settings().heartbeat_dir
    pattern = f"worker-{_UNSAFE.sub('_', node_name)}.heartbeat" if node_name else (
        f"worker-*@{_UNSAFE.sub('_', socket.gethostname())}.heartbeat")
    now = time.time()
    ages = {}
    for path in directory.glob(pattern):
        with contextlib.suppress(FileNotFoundError, ValueError):
            ages[path.stem.removeprefix("worker-")] = now - float(path.read_text())
    return ages


def write_beat_heartbeat(now: float | None = None) -> None:
    cache.set(BEAT_KEY, now if now is not None else time.time(), timeout=None)


def beat_heartbeat_age() -> float | None:
    """Seconds since beat last wrote its heartbeat; None when it never did."""
    seen = cache.get(BEAT_KEY)
    return None if seen is None else max(0.0, time.time() - float(seen))
