"""A command's error as stored on its row, and back: the reconciler decides on the class, as after ``client.call``."""

from __future__ import annotations

from typing import Any

from b24client import errors as b24errors

# A command that needed its register's CALL_ID when the register failed: tried again with it.
DEPENDENCY_FAILED = "DEPENDENCY_FAILED"
# Not sent: the portal cannot be called (uninstalled, tokens dead, unpaid); its own status says what next.
PORTAL_UNAVAILABLE = "PORTAL_UNAVAILABLE"

_TYPES: dict[str, type[b24errors.Bitrix24Error]] = {
    cls.__name__: cls for cls in (b24errors.TokenExpired, b24errors.TokenDead, b24errors.Transient,
                                  b24errors.InvalidRequest, b24errors.AccessDenied, b24errors.NotFound)
}


def record(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, b24errors.Bitrix24Error):
        name = type(exc).__name__ if type(exc).__name__ in _TYPES else (
            "Transient" if exc.retryable else "InvalidRequest")
        return {"type": name, "code": exc.code, "description": exc.description[:2000], "status": exc.status}
    # Not Bitrix24's answer: our own request could not be built (a bug or bad data), never better next time.
    return {"type": "InvalidRequest", "code": "LOCAL_ERROR", "description": f"{type(exc).__name__}: {exc}"[:2000],
            "status": None}


def dependency_failed() -> dict[str, Any]:
    return {"type": "Transient", "code": DEPENDENCY_FAILED,
            "description": "not sent: the register it needs the CALL_ID of failed", "status": None}


def exception_of(stored: dict[str, Any] | None, method: str) -> b24errors.Bitrix24Error:
    stored = stored if isinstance(stored, dict) else {}
    cls = _TYPES.get(str(stored.get("type") or ""), b24errors.Transient)
    return cls(str(stored.get("code") or ""), str(stored.get("description") or ""), stored.get("status"), None,
               method)
