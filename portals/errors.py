"""Exceptions the portals app raises to its callers."""

from __future__ import annotations


class PortalUnavailable(Exception):
    """The portal cannot be called: uninstalled, tokens dead, unpaid or disabled.

    Callers (tasks) must not retry: nothing will change until the portal's admin acts.
    """

    def __init__(self, portal_id: int, status: str, reason: str = "") -> None:
        self.portal_id = portal_id
        self.status = status
        self.reason = reason
        super().__init__(f"portal {portal_id} is {status}" + (f": {reason}" if reason else ""))


class InstallRejected(Exception):
    """An install/connect request failed verification; nothing was stored."""

    def __init__(self, message: str, *, status: int = 403) -> None:
        self.status = status
        super().__init__(message)


class VerificationThrottled(Exception):
    """Too many requests from this source (or for this portal) needed Bitrix24 to vouch for them lately:
    refused with 429 before anything is sent (``portals.verification_limits``)."""

    status = 429

    def __init__(self, retry_after: int) -> None:
        self.retry_after = max(1, int(retry_after))
        super().__init__(f"too many unverified requests; retry in {self.retry_after} s")


class EventRejected(Exception):
    """An inbound Bitrix24 event was refused (HTTP status in ``status``); nothing was acted on. Nothing is
    stored either, except the record of a forged uninstall (``Bitrix24Event`` with status ``refused``)."""

    def __init__(self, message: str, *, status: int) -> None:
        self.status = status
        super().__init__(message)
