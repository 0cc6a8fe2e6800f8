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


class EventRejected(Exception):
    """An inbound Bitrix24 event was refused (HTTP status in ``status``); nothing was acted on. Nothing is
    stored either, except the record of a forged uninstall (``Bitrix24Event`` with status ``refused``)."""

    def __init__(self, message: str, *, status: int) -> None:
        self.status = status
        super().__init__(message)
