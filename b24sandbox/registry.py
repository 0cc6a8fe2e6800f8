"""REST method registry shared by the sandbox core and its telephony/CRM modules.

Modules register their methods with ``@rest_method``; the core dispatcher (``b24sandbox.rest``) looks them up
by lower-cased name, checks scope/auth kind/admin, and renders results or ``RestError`` as Bitrix24 does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from b24sandbox.sandbox import Sandbox
    from b24sandbox.state import AppInstall, Portal, User


@dataclass
class MethodSpec:
    name: str  # lower-case full name, e.g. "telephony.externalcall.register"
    fn: Callable[[CallContext, dict], Any]
    scope: str | None  # required app scope; None = basic (always granted)
    app_only: bool  # webhook auth -> 403 WRONG_AUTH_TYPE
    admin_only: bool  # non-admin token user -> ACCESS_DENIED
    batchable: bool  # False -> 405 ERROR_BATCH_METHOD_NOT_ALLOWED inside batch
    list_method: bool  # fn returns the FULL list; the dispatcher pages it (50) and adds total/next


METHODS: dict[str, MethodSpec] = {}


def rest_method(
    name: str,
    *,
    scope: str | None = None,
    app_only: bool = False,
    admin_only: bool = False,
    batchable: bool = True,
    list_method: bool = False,
) -> Callable[[Callable[[CallContext, dict], Any]], Callable[[CallContext, dict], Any]]:
    """Register a REST method under its lower-cased name (Bitrix24 method names are case-insensitive)."""

    def decorator(fn: Callable[[CallContext, dict], Any]) -> Callable[[CallContext, dict], Any]:
        key = name.lower()
        METHODS[key] = MethodSpec(
            name=key,
            fn=fn,
            scope=scope,
            app_only=app_only,
            admin_only=admin_only,
            batchable=batchable,
            list_method=list_method,
        )
        return fn

    return decorator


class RestError(Exception):
    """A Bitrix24 REST error: HTTP ``status`` and body ``{"error": code, "error_description": ..., **extra}``.

    ``code`` may be ``""``: some Bitrix24 methods answer with an empty error code and only a description.
    """

    def __init__(self, code: str, description: str, status: int = 400, **extra: Any) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.status = status
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "error_description": self.description, **self.extra}


@dataclass
class CallContext:
    sandbox: Sandbox
    portal: Portal
    user: User  # the token's user
    app: AppInstall | None  # None when called with webhook auth
    access_token: str
    base_url: str  # how this portal is addressed in this mode, no trailing slash
    scope: tuple[str, ...] = ()  # the caller's scopes (the token's, or the webhook's)

    @property
    def now(self) -> float:
        return self.sandbox.clock.now()

    def fire_event(self, event: str, data: dict, *, user_id: int | None = None) -> None:
        """Deliver ``event`` to this portal's bindings (only after installFinish, no retry, failures recorded)."""
        self.sandbox.fire_event(self.portal, event, data, user_id=user_id)
