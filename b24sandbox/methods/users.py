"""user.get, user.current, user.admin, profile (docs/bitrix24-contract.md §7)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from b24sandbox.methods.params import as_bool, as_int, ci_get
from b24sandbox.registry import CallContext, rest_method
from b24sandbox.state import User

# user.get keys that are not filters when given at the top level
_RESERVED = {"sort", "order", "filter", "admin_mode", "select", "image_resize", "start", "auth"}
_OPERATOR_RE = re.compile(r"^(>=|<=|!@|!=%|!%=|!%|=%|%=|!=|>|<|@|%|=|!)?(.+)$")
_VISIBLE_TYPES = {"employee", "extranet"}  # bots, e-mail and open-channel users never come back


def _fields(user: User, scope: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """The user as user.get returns it: ``ID`` a string, ``ACTIVE`` a bool, dates as ``{}`` (§2.4).
    ``user_brief`` gets no contact details (§7); ``UF_PHONE_INNER`` is in every user scope."""
    data: dict[str, Any] = {
        "ID": str(user.id),
        "XML_ID": "",
        "ACTIVE": user.active,
        "NAME": user.name,
        "LAST_NAME": user.last_name,
        "SECOND_NAME": "",
        "TITLE": "",
        "IS_ONLINE": "Y" if user.is_online else "N",
        "TIME_ZONE": user.time_zone,
        "TIMESTAMP_X": {},
        "LAST_ACTIVITY_DATE": {},
        "PERSONAL_GENDER": user.gender,
        "PERSONAL_BIRTHDAY": "",
        "WORK_POSITION": user.work_position,
        "UF_EMPLOYMENT_DATE": "",
        "UF_DEPARTMENT": list(user.department_ids),
        "UF_PHONE_INNER": user.uf_phone_inner or "",
        "USER_TYPE": user.user_type,
    }
    if {"user", "user_basic"} & set(scope):
        data.update(
            {
                "EMAIL": user.email,
                "PERSONAL_MOBILE": user.personal_mobile or "",
                "PERSONAL_PHONE": user.personal_phone or "",
                "WORK_PHONE": user.work_phone or "",
                "PERSONAL_CITY": "",
                "PERSONAL_WWW": "",
            }
        )
    return data


def _value_of(user: User, field: str) -> Any:
    mapping: dict[str, Any] = {
        "ID": user.id,
        "ACTIVE": user.active,
        "NAME": user.name,
        "LAST_NAME": user.last_name,
        "EMAIL": user.email,
        "UF_PHONE_INNER": user.uf_phone_inner or "",
        "WORK_PHONE": user.work_phone or "",
        "PERSONAL_MOBILE": user.personal_mobile or "",
        "PERSONAL_PHONE": user.personal_phone or "",
        "USER_TYPE": user.user_type,
        "IS_ONLINE": "Y" if user.is_online else "N",
        "UF_DEPARTMENT": list(user.department_ids),
        "WORK_POSITION": user.work_position,
        "TIME_ZONE": user.time_zone,
        "PERSONAL_GENDER": user.gender,
    }
    return mapping.get(field)


def _norm(field: str, value: Any) -> Any:
    if field == "ACTIVE":
        return as_bool(value)
    if field == "ID":
        return as_int(value, -1)
    if value is None:
        return ""
    return str(value)


def _like(pattern: str, value: str) -> bool:
    regex = "^" + ".*".join(re.escape(p) for p in pattern.split("%")) + "$"
    return re.match(regex, value, flags=re.IGNORECASE | re.DOTALL) is not None


def _match(user: User, key: str, expected: Any) -> bool:
    match = _OPERATOR_RE.match(key)
    assert match is not None
    op, field = match.group(1) or "", match.group(2).upper()
    if field == "NAME_SEARCH":
        needle = str(expected).lower()
        return any(needle in (v or "").lower() for v in (user.name, user.last_name, user.email))
    actual = _value_of(user, field)
    if actual is None:
        return True  # unknown fields are ignored, as Bitrix24 ignores filters it cannot apply
    if isinstance(actual, list):  # UF_DEPARTMENT: any of
        wanted = expected if isinstance(expected, list) else [expected]
        hit = any(as_int(w, -1) in actual for w in wanted)
        return not hit if op.startswith("!") else hit
    actual_n = _norm(field, actual)
    if op in ("@", "!@") or (isinstance(expected, list) and op in ("", "=", "!", "!=")):
        values = expected if isinstance(expected, list) else str(expected).split(",")
        hit = actual_n in [_norm(field, v) for v in values]
        return not hit if op.startswith("!") else hit
    if op in ("%", "!%"):
        hit = str(expected).lower() in str(actual_n).lower()
        return not hit if op == "!%" else hit
    if op in ("=%", "%=", "!=%", "!%="):
        hit = _like(str(expected), str(actual_n))
        return not hit if op.startswith("!") else hit
    wanted_n = _norm(field, expected)
    if op in (">", ">=", "<", "<="):
        try:
            a, w = (actual_n, wanted_n) if field == "ID" else (float(actual_n), float(wanted_n))
        except (TypeError, ValueError):
            return False
        return {">": a > w, ">=": a >= w, "<": a < w, "<=": a <= w}[op]
    if op in ("!", "!="):
        return actual_n != wanted_n
    return actual_n == wanted_n


def _filters(params: dict[str, Any]) -> dict[str, Any]:
    """Filter keys come as ``filter``/``FILTER`` objects or at the top level (§7, §11.16)."""
    result: dict[str, Any] = {}
    for key, value in params.items():
        if key.lower() in _RESERVED:
            continue
        result[key] = value
    nested = ci_get(params, "filter")
    if isinstance(nested, dict):
        result.update(nested)
    return result


@rest_method("user.get", scope="user_brief", list_method=True)
def user_get(ctx: CallContext, params: dict[str, Any]) -> list[dict[str, Any]]:
    filters = _filters(params)
    users = [u for u in ctx.portal.users.values() if u.user_type in _VISIBLE_TYPES]
    users = [u for u in users if all(_match(u, k, v) for k, v in filters.items())]
    sort = str(ci_get(params, "sort") or "ID").upper()
    descending = str(ci_get(params, "order") or "ASC").upper() == "DESC"

    def key(user: User) -> Any:
        value = _value_of(user, sort)
        return (0, value) if isinstance(value, int | float) else (1, str(value or ""))

    users.sort(key=key, reverse=descending)
    scope = ctx.scope
    return [_fields(u, scope) for u in users]


@rest_method("user.current", scope="user_brief")
def user_current(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any]:
    return _fields(ctx.user, ctx.scope)


@rest_method("user.admin")
def user_admin(ctx: CallContext, params: dict[str, Any]) -> bool:
    return ctx.user.is_admin


@rest_method("profile")
def profile(ctx: CallContext, params: dict[str, Any]) -> dict[str, Any] | list[Any]:
    user = ctx.user
    if not user.active:
        return []
    return {
        "ID": str(user.id),
        "ADMIN": user.is_admin,
        "NAME": user.name,
        "LAST_NAME": user.last_name,
        "PERSONAL_GENDER": user.gender,
        "TIME_ZONE": user.time_zone,
        "TIME_ZONE_OFFSET": _offset_seconds(user.time_zone),
    }


def _offset_seconds(zone: str) -> int:
    from zoneinfo import ZoneInfo

    try:
        offset = datetime.now(UTC).astimezone(ZoneInfo(zone)).utcoffset()
    except Exception:
        return 0
    return int(offset.total_seconds()) if offset else 0
