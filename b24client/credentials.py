"""A portal's token pair and the storage protocol the client needs from the app."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Credentials:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float | None  # unix seconds, None = unknown
    client_endpoint: str  # https://portal.bitrix24.com/rest/
    server_endpoint: str  # https://oauth.bitrix.info/rest/
    member_id: str
    user_id: int | None = None
    scope: tuple[str, ...] = ()

    @property
    def portal_host(self) -> str:
        """The portal's host (the token response's ``domain`` is the OAuth server, not this)."""
        return urlsplit(self.client_endpoint).netloc


class TokenStore(Protocol):
    """Implemented by the app (``portals.token_store.PortalTokenStore``: DB row + distributed lock)."""

    member_id: str

    def load(self) -> Credentials: ...

    def refresh(self, failed: Credentials, do_refresh: Callable[[Credentials], Credentials]) -> Credentials:
        """Serialise refresh per portal across processes/machines: take the lock, re-read; if the stored
        access token differs from ``failed.access_token`` another worker already refreshed → return it;
        else call ``do_refresh(stored)`` and persist the result before releasing the lock."""
        ...

    def endpoint_changed(self, new_client_endpoint: str) -> None: ...

    def mark_dead(self, reason: str) -> None: ...
