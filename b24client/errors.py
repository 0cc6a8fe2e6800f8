"""Bitrix24 error catalogue mapped to a small exception hierarchy.

What callers decide on is the class, not the code:

* ``TokenExpired``   refresh the access token and repeat once (the client does this itself).
* ``TokenDead``      the portal's token chain is gone (uninstalled, unpaid, deleted): mark it, never retry.
* ``RateLimited``    the portal's request budget is spent: retry after ``retry_after`` seconds.
* ``MethodBlocked``  one method is over its operating-time budget: no calls to it until ``until``.
* ``Transient``      5xx, timeouts, connection errors: retry with backoff.
* ``InvalidRequest`` the request is wrong or not permitted: retrying the same request will not help.
  ``AccessDenied`` and ``NotFound`` are the two refinements callers commonly branch on.

Codes are matched case-insensitively (Bitrix24 mixes ``expired_token`` and ``QUERY_LIMIT_EXCEEDED``);
an empty code is classified by its description (``telephony.externalcall.finish`` answers
``{"error": "", "error_description": "Call is not found ..."}``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import requests


class Bitrix24Error(Exception):
    retryable = False

    def __init__(
        self,
        code: str = "",
        description: str = "",
        status: int | None = None,
        payload: Any = None,
        method: str | None = None,
    ) -> None:
        self.code = code or ""
        self.description = description or ""
        self.status = status
        self.payload = payload
        self.method = method
        super().__init__(self._message())

    def _message(self) -> str:
        where = f" in {self.method}" if self.method else ""
        status = f" (HTTP {self.status})" if self.status is not None else ""
        return f"{self.code or 'ERROR'}{where}{status}: {self.description}".rstrip(": ")


class TokenExpired(Bitrix24Error):
    retryable = True


class TokenDead(Bitrix24Error):
    """The portal's credentials can never work again without a reinstall or payment."""

    retryable = False


class RateLimited(Bitrix24Error):
    retryable = True

    def __init__(self, retry_after: float, code: str = "QUERY_LIMIT_EXCEEDED", description: str = "",
                 status: int | None = None, payload: Any = None, method: str | None = None) -> None:
        self.retry_after = max(0.0, float(retry_after))
        super().__init__(code, description or f"retry after {self.retry_after:.2f}s", status, payload, method)


class MethodBlocked(Bitrix24Error):
    """``method`` must not be called for this portal before ``until`` (unix s): Bitrix24 answered 429
    ``OPERATION_TIME_LIMIT`` (code ``OPERATION_TIME_LIMIT``), or the client held the call back without a
    request because the method is close to its time budget (``LOCAL_OPERATING_HOLD``, ``LOCAL_OPERATING_PACE``;
    docs/bitrix24-contract.md §3.2)."""

    retryable = True

    def __init__(self, method: str, until: float, code: str = "OPERATION_TIME_LIMIT", description: str = "",
                 status: int | None = None, payload: Any = None) -> None:
        self.until = float(until)
        super().__init__(code, description or f"method blocked until {self.until:.0f}", status, payload, method)


class Transient(Bitrix24Error):
    retryable = True


class InvalidRequest(Bitrix24Error):
    retryable = False


class AccessDenied(InvalidRequest):
    """Scope, permission, plan or admin-confirmation problems."""


class NotFound(InvalidRequest):
    """The referenced entity (call, user, line...) does not exist."""


# Lower-cased codes. Anything not listed is classified by HTTP status (5xx → Transient, else InvalidRequest).
_BY_CODE: dict[str, type[Bitrix24Error]] = {
    "expired_token": TokenExpired,
    "invalid_token": TokenExpired,
    "invalid_grant": TokenDead,
    "not_installed": TokenDead,
    "payment_required": TokenDead,
    "error_oauth": TokenDead,
    "application_not_found": TokenDead,
    "portal_deleted": TokenDead,
    # The OAuth server answers invalid_client both for a wrong client secret and for "app not
    # installed on that portal"; with a working app configuration only the latter is per-portal.
    "invalid_client": TokenDead,
    "query_limit_exceeded": RateLimited,
    "operation_time_limit": MethodBlocked,
    "overload_limit": Transient,
    "internal_server_error": Transient,
    "error_unexpected_answer": Transient,
    "temporarily_unavailable": Transient,
    "no_auth_found": AccessDenied,
    "authorization_error": AccessDenied,
    "method_confirm_waiting": AccessDenied,
    "method_confirm_denied": AccessDenied,
    "wrong_auth_type": AccessDenied,
    "access_denied": AccessDenied,
    "insufficient_scope": AccessDenied,
    "invalid_scope": AccessDenied,
    "invalid_credentials": AccessDenied,
    "user_access_error": AccessDenied,
    "accessexception": AccessDenied,
    "error_not_found": NotFound,
    "not_found": NotFound,
    "wrong_client": InvalidRequest,
    "invalid_request": InvalidRequest,
}

# For an empty code: Bitrix24 (ERROR_CORE in the docs) only gives a human description.
_BY_DESCRIPTION: list[tuple[re.Pattern[str], type[Bitrix24Error]]] = [
    (re.compile(r"access token provided has expired", re.I), TokenExpired),
    (re.compile(r"too many requests", re.I), RateLimited),
    (re.compile(r"operation time limit", re.I), MethodBlocked),
    (re.compile(r"access denied|not enough (rights|permissions)|permission", re.I), AccessDenied),
    (re.compile(r"\bnot (be )?found\b|is not found|does not exist", re.I), NotFound),
]

TOKEN_DEAD_HTTP_STATUSES = frozenset({404, 410})


def classify(code: str, description: str = "", status: int | None = None) -> type[Bitrix24Error]:
    code_l = (code or "").strip().lower()
    if code_l in _BY_CODE:
        return _BY_CODE[code_l]
    if not code_l:
        for pattern, cls in _BY_DESCRIPTION:
            if pattern.search(description or ""):
                return cls
    if status is not None and status >= 500:
        return Transient
    return InvalidRequest


def from_payload(
    payload: Mapping[str, Any] | None,
    status: int | None = None,
    method: str | None = None,
    *,
    retry_after: float = 1.0,
    blocked_until: float = 0.0,
) -> Bitrix24Error:
    """Exception for an error envelope ``{"error": ..., "error_description": ...}`` (or a bare status)."""
    payload = payload if isinstance(payload, Mapping) else {}
    code = str(payload.get("error") or "")
    description = str(payload.get("error_description") or "")
    if not code and not description and status is not None:
        description = f"HTTP {status} without an error body"
    cls = classify(code, description, status)
    if cls is RateLimited:
        return RateLimited(retry_after, code or "QUERY_LIMIT_EXCEEDED", description, status, payload, method)
    if cls is MethodBlocked:
        return MethodBlocked(method or "", blocked_until, code or "OPERATION_TIME_LIMIT", description, status,
                             payload)
    return cls(code, description, status, payload, method)


def is_retryable(exc: BaseException) -> bool:
    """Whether trying the same request again later can succeed."""
    if isinstance(exc, Bitrix24Error):
        return exc.retryable
    return isinstance(exc, requests.ConnectionError | requests.Timeout)
