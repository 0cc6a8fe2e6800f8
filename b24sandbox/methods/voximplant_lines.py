"""The portal's outgoing lines and its "default number for outgoing calls" (``voximplant.line.*``).

Click-to-call reaches an external-telephony app only while the app (or one of its external lines) is
that default (docs/bitrix24-contract.md §5.9, §6.1). Bitrix24 lists the app as a pseudo-line ``REST_APP:<app id>`` and
each of its external lines by number, next to the portal's own lines (here only ``LINK_BASE_NUMBER``).
All three methods need the telephony line-management right; the sandbox grants it to administrators.

``Portal.app_is_default_line`` stays the one switch the click-to-call scenario reads;
``Portal.default_outgoing_number`` says which of the app's numbers was chosen ("" = the app itself).
"""

from __future__ import annotations

from typing import Any

from b24sandbox.methods.params import ci_get
from b24sandbox.registry import CallContext, RestError, rest_method
from b24sandbox.state import Portal

LINK_BASE_NUMBER = "LINK_BASE_NUMBER"
LINK_BASE_NAME = "Bitrix24 number"
REST_APP_PREFIX = "REST_APP:"


def app_line_id(portal: Portal) -> str | None:
    """``REST_APP:<id>`` of the installed app (the id app.info reports as ``ID``)."""
    if portal.app is None:
        return None
    return f"{REST_APP_PREFIX}{portal.app.id}"


def _app_numbers(portal: Portal) -> dict[str, str]:
    if portal.app is None or portal.telephony is None:
        return {}
    client_id = portal.app.client_id
    return {
        line.number: line.name or ""
        for line in sorted(portal.telephony.lines.values(), key=lambda x: x.id)
        if line.client_id == client_id
    }


def _app_name(ctx: CallContext) -> str:
    registered = ctx.sandbox.app
    return registered.code if registered is not None else (ctx.portal.app.client_id if ctx.portal.app else "")


def portal_lines(ctx: CallContext) -> dict[str, str]:
    """``GetPortalNumbers(true, true)``: line id -> display name."""
    portal = ctx.portal
    lines = {LINK_BASE_NUMBER: LINK_BASE_NAME}
    app_id = app_line_id(portal)
    if app_id is not None:
        name = _app_name(ctx)
        lines[app_id] = f"External app: {name}"
        for number, line_name in _app_numbers(portal).items():
            lines[number] = f"External app: {name}: " + (f"{number} - {line_name}" if line_name else number)
    return lines


def outgoing_line(portal: Portal) -> str:
    if portal.app is None or not portal.app_is_default_line:
        return LINK_BASE_NUMBER
    if portal.default_outgoing_number and portal.default_outgoing_number in _app_numbers(portal):
        return portal.default_outgoing_number
    return app_line_id(portal) or LINK_BASE_NUMBER


def set_outgoing_line(portal: Portal, line_id: str) -> None:
    """What the admin does in Telephony settings → "Default number for outgoing calls"."""
    if line_id == LINK_BASE_NUMBER:
        portal.app_is_default_line = False
        portal.default_outgoing_number = ""
    elif line_id == app_line_id(portal):
        portal.app_is_default_line = True
        portal.default_outgoing_number = ""
    elif line_id in _app_numbers(portal):
        portal.app_is_default_line = True
        portal.default_outgoing_number = line_id
    else:
        raise ValueError(f"{line_id!r} is not a line of this portal")


@rest_method("voximplant.line.get", scope="telephony", admin_only=True)
def line_get(ctx: CallContext, params: dict[str, Any]) -> dict[str, str]:
    return portal_lines(ctx)


@rest_method("voximplant.line.outgoing.get", scope="telephony", admin_only=True)
def line_outgoing_get(ctx: CallContext, params: dict[str, Any]) -> str:
    return outgoing_line(ctx.portal)


@rest_method("voximplant.line.outgoing.set", scope="telephony", admin_only=True)
def line_outgoing_set(ctx: CallContext, params: dict[str, Any]) -> int:
    line_id = str(ci_get(params, "LINE_ID") or "")
    if line_id not in portal_lines(ctx):
        # CVoxImplantConfig::SetPortalNumber refuses unknown ids; the REST method then answers false.
        raise RestError("ERROR_CORE", "Line not found", 400)
    set_outgoing_line(ctx.portal, line_id)
    return 1
