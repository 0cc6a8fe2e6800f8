"""server.time, scope, method.get (docs/bitrix24-contract.md §10.5)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from b24sandbox.methods.params import ci_get
from b24sandbox.registry import METHODS, CallContext, rest_method
from b24sandbox.rest import SCOPE_SATISFIED_BY, normalize_method


@rest_method("server.time")
def server_time(ctx: CallContext, params: dict[str, Any]) -> str:
    return datetime.fromtimestamp(ctx.now, ZoneInfo(ctx.portal.time_zone)).isoformat(timespec="seconds")


@rest_method("scope")
def scope(ctx: CallContext, params: dict[str, Any]) -> list[str]:
    return list(ctx.scope)


@rest_method("method.get")
def method_get(ctx: CallContext, params: dict[str, Any]) -> dict[str, bool]:
    name = normalize_method(str(ci_get(params, "name") or ""))
    spec = METHODS.get(name)
    if name == "batch":
        return {"isExisting": True, "isAvailable": True}
    if spec is None:
        return {"isExisting": False, "isAvailable": False}
    available = spec.scope is None or bool(SCOPE_SATISFIED_BY.get(spec.scope, {spec.scope}) & set(ctx.scope))
    return {"isExisting": True, "isAvailable": available}
