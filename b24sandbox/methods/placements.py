"""placement.bind / unbind / get / list (docs/bitrix24-contract.md §8)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from b24sandbox.methods.event_methods import _is_local
from b24sandbox.methods.params import as_int, ci_get
from b24sandbox.phparray import php_json_array
from b24sandbox.registry import CallContext, RestError, rest_method
from b24sandbox.state import PlacementBinding

# code -> the tool scope it needs besides "placement" (None = none)
PLACEMENTS: dict[str, str | None] = {
    "CALL_CARD": "telephony",
    "TELEPHONY_ANALYTICS_MENU": "telephony",
    "PAGE_BACKGROUND_WORKER": None,
    "LEFT_MENU": None,
    "REST_APP_URI": None,
    "CONTACT_CENTER": "contact_center",
    "CRM_CONTACT_DETAIL_TAB": "crm",
    "CRM_COMPANY_DETAIL_TAB": "crm",
    "CRM_LEAD_DETAIL_TAB": "crm",
    "CRM_DEAL_DETAIL_TAB": "crm",
    "CRM_ANALYTICS_MENU": "crm",
}
SINGLE_INSTANCE = {"REST_APP_URI", "PAGE_BACKGROUND_WORKER"}


def _argument(name: str) -> RestError:
    # documented to come with HTTP 200 (§2.3): clients must look for "error" in every body
    return RestError("ERROR_ARGUMENT", f"Argument '{name}' is null or empty", 200, argument=name)


def _available(ctx: CallContext, code: str) -> bool:
    if code not in PLACEMENTS:
        return False
    tool = PLACEMENTS[code]
    return tool is None or tool in ctx.scope


def _own(ctx: CallContext) -> list[PlacementBinding]:
    client_id = ctx.app.client_id if ctx.app else None
    return [p for p in ctx.portal.placements if p.client_id == client_id]


@rest_method("placement.bind", scope="placement", app_only=True, admin_only=True)
def placement_bind(ctx: CallContext, params: dict[str, Any]) -> bool:
    code = str(ci_get(params, "PLACEMENT") or "").upper()
    if not code:
        raise _argument("PLACEMENT")
    if not _available(ctx, code):
        raise RestError("ERROR_PLACEMENT_NOT_FOUND", "Placement not found", 400)
    handler = ci_get(params, "HANDLER")
    if not isinstance(handler, str) or not handler.strip():
        raise _argument("HANDLER")
    parts = urlsplit(handler)
    if parts.scheme not in ("http", "https"):
        raise RestError("ERROR_UNSUPPORTED_PROTOCOL", "Unsupported event handler protocol", 400)
    if not parts.hostname or (ctx.sandbox.reject_local_handlers and _is_local(handler)):
        raise RestError("ERROR_WRONG_HANDLER_URL", "Wrong handler URL", 400)
    user_id = as_int(ci_get(params, "USER_ID"), 0) or 0
    if user_id and code != "PAGE_BACKGROUND_WORKER":
        raise RestError("ERROR_PLACEMENT_USER_MODE", "User mode is not available", 200)
    options = ci_get(params, "OPTIONS")
    options = options if isinstance(options, dict) else {}
    if code == "PAGE_BACKGROUND_WORKER" and not options.get("errorHandlerUrl"):
        raise RestError("EMPTY_ERROR_HANDLER_URL", "Empty error handler URL", 200)
    existing = [p for p in _own(ctx) if p.placement == code]
    if code in SINGLE_INSTANCE and existing:
        raise RestError("ERROR_PLACEMENT_MAX_COUNT", "Placement max count exceeded", 200)
    if any(p.handler == handler and p.user_id == user_id for p in existing):
        return False
    if code in ("CALL_CARD", "TELEPHONY_ANALYTICS_MENU"):
        options = {}  # ignored for these placements (§8)
    lang_all = ci_get(params, "LANG_ALL")
    ctx.portal.placements.append(
        PlacementBinding(
            placement=code,
            handler=handler,
            title=str(ci_get(params, "TITLE") or ""),
            description=str(ci_get(params, "DESCRIPTION") or ""),
            client_id=ctx.app.client_id if ctx.app else None,
            options=options,
            user_id=user_id,
            group_name=str(ci_get(params, "GROUP_NAME") or ""),
            lang_all=lang_all if isinstance(lang_all, dict) else {},
        )
    )
    return True


@rest_method("placement.unbind", scope="placement", app_only=True, admin_only=True)
def placement_unbind(ctx: CallContext, params: dict[str, Any]) -> dict[str, int]:
    code = str(ci_get(params, "PLACEMENT") or "").upper()
    if not code:
        raise RestError("ERROR_ARGUMENT", "Argument 'PLACEMENT' is null or empty", 400, argument="PLACEMENT")
    handler = ci_get(params, "HANDLER")
    user_id = as_int(ci_get(params, "USER_ID"), None)
    own = set(map(id, _own(ctx)))
    count = 0
    keep = []
    for binding in ctx.portal.placements:
        hit = (
            id(binding) in own
            and binding.placement == code
            and (not handler or binding.handler == handler)
            and (user_id is None or binding.user_id == user_id)
        )
        if hit:
            count += 2  # the real counter increments per found record and again per removal (§8)
        else:
            keep.append(binding)
    ctx.portal.placements[:] = keep
    return {"count": count}


@rest_method("placement.get", scope="placement", app_only=True)
def placement_get(ctx: CallContext, params: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "placement": p.placement,
            "userId": p.user_id,
            "handler": p.handler,
            "options": php_json_array(p.options),
            "title": p.title,
            "description": p.description,
            "langAll": php_json_array(p.lang_all),
        }
        for p in _own(ctx)
    ]


@rest_method("placement.list", scope="placement")
def placement_list(ctx: CallContext, params: dict[str, Any]) -> list[str]:
    return sorted(code for code in PLACEMENTS if _available(ctx, code))
