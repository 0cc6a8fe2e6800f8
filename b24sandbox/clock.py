"""Clocks for the sandbox: tests move a ManualClock by hand, the demo server runs on the real one.

Every expiry in the sandbox (tokens, codes, rate-limit drain, operating-time buckets, delayed events) reads
``sandbox.clock.now()``, so a test can jump an hour ahead without sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RealClock:
    manual = False

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def on_advance(self, listener: Callable[[float], None]) -> None:
        """Real time advances by itself; listeners are polled by the sandbox's worker instead."""


class ManualClock:
    """A clock that only moves when told to. Starts at the real current time unless ``start`` is given,
    so absolute timestamps it produces (token ``expires``) stay plausible for code that compares them to
    ``time.time()``."""

    manual = True

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else float(start)
        self._lock = threading.Lock()
        self._listeners: list[Callable[[float], None]] = []

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("a ManualClock never goes backwards")
        with self._lock:
            self._now += seconds
            now = self._now
        for listener in list(self._listeners):
            listener(now)
        return now

    def set(self, timestamp: float) -> None:
        if timestamp < self._now:
            raise ValueError("a ManualClock never goes backwards")
        self.advance(timestamp - self._now)

    def sleep(self, seconds: float) -> None:
        """Sleeping on a manual clock just moves it (used for injected slow answers)."""
        if seconds > 0:
            self.advance(seconds)

    def on_advance(self, listener: Callable[[float], None]) -> None:
        self._listeners.append(listener)


Clock = RealClock | ManualClock
