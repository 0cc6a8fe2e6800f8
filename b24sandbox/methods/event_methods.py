"""event.bind / event.unbind / event.get / events / event.test (docs/bitrix24-contract.md §4.1)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from b24sandbox.events import KNOWN_EVENTS
from b24sandbox.methods.params import as_int, ci_get
from b24sandbox.registry import CallContext, RestError, rest_method
from b24sandbox.rest import SCOPE_SATISFIED_BY
from b24sandbox.state import EventBinding


def _available(ctx: CallContext, event: str) -> bool:
    if event not in KNOWN_EVENTS:
        return False
    scope = KNOWN_EVENTS[event]
    return scope is None or bool(SCOPE_SATISFIED_BY.get(scope, {scope}) & set(ctx.scope))


def _is_local(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "127.0.0.1", "::1") or host.endswith(".local")


def _valid_handler(ctx: CallContext, handler: Any) -> str:
    if not isinstance(handler, str) or not handler.strip():
        raise RestError("ERROR_ARGUMENT", "Argument 'handler' is null or empty", 400, argument="handler")
    parts = urlsplit(handler)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RestError("ERROR_WRONG_HANDLER_URL", "Wrong handler URL", 400)
    if ctx.sandbox.reject_local_handlers and _is_local(handler):
        raise RestError("ERROR_WRONG_HANDLER_URL", "Wrong handler URL", 400)
    return handler


@rest_method("event.bind", app_only=True)
def event_bind(ctx: CallContext, params: dict[str, Any]) -> bool:
    event = str(ci_get(params, "event") or "").upper()
    if not event:
        raise RestError("ERROR_ARGUMENT", "Argument 'event' is null or empty", 400, argument="event")
    handler = ci_get(params, "handler")
    event_type = str(ci_get(params, "event_type") or "online").lower()
    auth_type = as_int(ci_get(params, "auth_type"), 0) or 0
    if event_type == "offline" and not ctx.user.is_admin:
        raise RestError("ACCESS_DENIED", "Access denied! Offline events are available to administrators only", 403)
    if auth_type and auth_type != ctx.user.id and not ctx.user.is_admin:
        raise RestError("ACCESS_DENIED", "Access denied! auth_type of another user requires administrator rights", 403)
    if not _available(ctx, event):
        raise RestError("ERROR_EVENT_NOT_FOUND", "Event not found", 400)
    if event_type == "offline":
        handler = ""
    else:
        handler = _valid_handler(ctx, handler)
    portal = ctx.portal
    for binding in portal.event_bindings:
        if binding.event == event and binding.handler == handler and binding.auth_type == auth_type:
            if ctx.sandbox.duplicate_bind_style == "unable":
                raise RestError("ERROR_CORE", "Unable to set event handler: Handler already binded", 400)
            raise RestError("ERROR_HANDLER_ALREADY_EXIST", "Handler already exists!", 400)
    portal.next_binding_id += 1
    portal.event_bindings.append(
        EventBinding(
            id=portal.next_binding_id,
            event=event,
            handler=handler,
            auth_type=auth_type,
            event_type=event_type,
            client_id=ctx.app.client_id if ctx.app else None,
            options=ci_get(params, "options") if isinstance(ci_get(params, "options"), dict) else {},
            bound_by=ctx.user.id,
        )
    )
    return True


@rest_method("event.unbind", app_only=True)
def event_unbind(ctx: CallContext, params: dict[str, Any]) -> dict[str, int]:
    event = str(ci_get(params, "event") or "").upper()
    if not event:
        raise RestError("ERROR_ARGUMENT", "Argument 'event' is null or empty", 400, argument="event")
    handler = ci_get(params, "handler")
    event_type = str(ci_get(params, "event_type") or "online").lower()
    raw_auth = ci_get(params, "auth_type")
    portal = ctx.portal
    keep: list[EventBinding] = []
    removed = 0
    for binding in portal.event_bindings:
        hit = (
            binding.event == event
            and binding.event_type == event_type
            and (event_type == "offline" or binding.handler == handler)
            and (raw_auth is None or (as_int(raw_auth, 0) or 0) == binding.auth_type)
            and (ctx.user.is_admin or binding.bound_by == ctx.user.id)
        )
        if hit:
            removed += 1
        else:
            keep.append(binding)
    portal.event_bindings[:] = keep
    return {"count": removed}


@rest_method("event.get", app_only=True)
def event_get(ctx: CallContext, params: dict[str, Any]) -> list[dict[str, Any]]:
    """``auth_type`` comes back as a string (§2.4); non-admins see only their own bindings."""
    rows = []
    for binding in ctx.portal.event_bindings:
        if not ctx.user.is_admin and binding.bound_by != ctx.user.id:
            continue
        row: dict[str, Any] = {
            "event": binding.event,
            "handler": binding.handler,
            "auth_type": str(binding.auth_type),
            "offline": 1 if binding.event_type == "offline" else 0,
        }
        rows.append(row)
    return rows


@rest_method("events")
def events(ctx: CallContext, params: dict[str, Any]) -> list[str]:
    return sorted(e for e in KNOWN_EVENTS if _available(ctx, e))


@rest_method("event.test", app_only=True)
def event_test(ctx: CallContext, params: dict[str, Any]) -> int:
    ctx.fire_event("ONAPPTEST", {"QUERY": params}, user_id=ctx.user.id)
    return 1
