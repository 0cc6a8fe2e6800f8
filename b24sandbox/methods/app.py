"""app.info (portal side) and app.option.get/set (docs/bitrix24-contract.md §1.11, §10.1)."""

from __future__ import annotations

from typing import Any

from b24sandbox.methods.params import ci_get
from b24sandbox.phparray import php_json_array
from b24sandbox.registry import CallContext, RestError, rest_method

# plan -> (LICENSE_TYPE, LICENSE_FAMILY) as app.info reports them
_LICENSES = {"standard": ("std", "std"), "enterprise": ("ent250", "ent")}


@rest_method("app.info")
def app_info(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    if ctx.app is None:  # webhook: documented as 400, not the usual 403
        raise RestError("ACCESS_DENIED", "Access denied! Application context required", 400)
    app = ctx.app
    license_type, family = _LICENSES.get(ctx.portal.plan, ("std", "std"))
    registered = ctx.sandbox.app
    return {
        "ID": app.id,
        "CODE": registered.code if registered else app.client_id,
        "VERSION": app.version,
        "STATUS": app.status,
        "INSTALLED": app.installed,
        "PAYMENT_EXPIRED": "Y" if app.payment_expired else "N",
        "DAYS": app.days,
        "LANGUAGE_ID": ctx.portal.lang,
        "LICENSE": f"{ctx.portal.lang}_{license_type}",
        "LICENSE_TYPE": license_type,
        "LICENSE_FAMILY": family,
    }


@rest_method("app.option.set")
def app_option_set(ctx: CallContext, params: dict[str, Any]) -> bool:
    if ctx.app is None:
        raise RestError("AccessException", "Application context required", 400)
    if not ctx.user.is_admin:
        raise RestError("AccessException", "Administrator authorization required", 400)
    options = ci_get(params, "options")
    if not isinstance(options, dict) or not options:
        raise RestError("ArgumentNullException", "options is empty", 400)
    ctx.portal.options.update(options)
    return True


@rest_method("app.option.get")
def app_option_get(ctx: CallContext, params: dict[str, Any]) -> Any:
    if ctx.app is None:
        raise RestError("AccessException", "Application context required", 400)
    key = ci_get(params, "option")
    if key is not None and key != "":
        return ctx.portal.options.get(str(key))
    return php_json_array(dict(ctx.portal.options))
