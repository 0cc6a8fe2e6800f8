"""A ``TokenStore`` kept in memory: for scripts, the vendor's tools and tests.

Refresh is serialised with a coordination lock, so several clients in several threads (or, with a
shared backend, processes that share the object's state some other way) follow the store protocol:
re-check under the lock, refresh only if the failed token is still the stored one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

from . import coordination
from .credentials import Credentials


class MemoryTokenStore:
    def __init__(self, credentials: Credentials, lock_backend: coordination.Coordination | None = None) -> None:
        self.member_id = credentials.member_id
        self._creds = credentials
        self._guard = threading.Lock()
        self._locks = lock_backend or coordination.MemoryBackend()
        self.dead_reason: str | None = None
        self.refresh_count = 0
        self.endpoint_history: list[str] = []

    def load(self) -> Credentials:
        with self._guard:
            return self._creds

    def refresh(self, failed: Credentials, do_refresh: Callable[[Credentials], Credentials]) -> Credentials:
        with self._locks.lock(f"token-refresh:{self.member_id}", timeout=60):
            stored = self.load()
            if stored.access_token != failed.access_token:
                return stored  # someone else refreshed while we waited for the lock
            fresh = do_refresh(stored)
            with self._guard:
                self._creds = fresh
                self.refresh_count += 1
            return fresh

    def endpoint_changed(self, new_client_endpoint: str) -> None:
        with self._guard:
            self._creds = replace(self._creds, client_endpoint=new_client_endpoint)
            self.endpoint_history.append(new_client_endpoint)

    def mark_dead(self, reason: str) -> None:
        with self._guard:
            self.dead_reason = reason
