"""Worker functions for the multi-process coordination tests (importable by 'spawn' children)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from b24client import coordination


def hammer_bucket(url, prefix, key, capacity, drain, duration, barrier, out):
    backend = coordination.from_url(url, prefix=prefix)
    admitted = []  # (before, after) around each admitting acquire(): the true admission lies inside
    barrier.wait()
    end = time.time() + duration
    while time.time() < end:
        before = time.time()
        wait = backend.acquire(key, capacity, drain)
        after = time.time()
        if wait == 0:
            admitted.append((before, after))
        else:
            time.sleep(min(wait, 0.001))
    out.put(admitted)


def hammer_slot(url, prefix, key, interval, duration, barrier, out):
    backend = coordination.from_url(url, prefix=prefix)
    admitted = []  # (before, after) around each reserve_slot() that was given the slot
    barrier.wait()
    end = time.time() + duration
    while time.time() < end:
        before = time.time()
        wait = backend.reserve_slot(key, interval)
        after = time.time()
        if wait == 0:
            admitted.append((before, after))
        else:
            time.sleep(min(wait, 0.002))
    out.put(admitted)


def lock_rounds(url, prefix, lock_name, state_dir, rounds, barrier, out):
    backend = coordination.from_url(url, prefix=prefix)
    state = Path(state_dir)
    did, overlaps = [], 0
    for r in range(rounds):
        barrier.wait()
        with backend.lock(lock_name, timeout=30, wait=30):
            marker = state / "inside"
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                overlaps += 1
                fd = None
            done = state / f"round-{r}"
            # The single-flight pattern of token refresh: re-check under the lock, act only if not done.
            if not done.exists():
                time.sleep(0.02)  # widen the window in which a broken lock would let a second process in
                done.write_text(str(os.getpid()))
                did.append(r)
            if fd is not None:
                os.close(fd)
                os.remove(marker)
    out.put((os.getpid(), did, overlaps))
