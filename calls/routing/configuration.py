"""Routing and callback settings (services): a line's fallback and callback agent, the portal's
callback agent. Used by the settings page, the admin and ``manage.py line_routing``.

Bad input raises ``ValidationError`` and changes nothing.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from calls.models import LineRouting, PbxLine
from calls.originate.callbacks import PORTAL_CALLBACK_AGENT_SETTING
from portals.models import Portal

_EXTENSION = re.compile(r"^[0-9*#]{1,32}$")
_UNSET: Any = object()


def _user_id(value: Any, field: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        user_id = int(value)
    except (TypeError, ValueError):
        raise ValidationError({field: f"{value!r} is not a Bitrix24 user id"}) from None
    if user_id <= 0:
        raise ValidationError({field: "a Bitrix24 user id is a positive number"})
    return user_id


def _extension(value: Any) -> str:
    text = str(value or "").strip()
    if text and not _EXTENSION.match(text):
        raise ValidationError({"default_extension": f"{text!r} is not an extension (digits, * and # only)"})
    return text


def set_line_routing(
    line: PbxLine,
    *,
    route_to_responsible: bool = _UNSET,
    default_extension: str | None = _UNSET,
    default_user_id: int | None = _UNSET,
    callback_user_id: int | None = _UNSET,
) -> LineRouting:
    """Change only the settings given; the others keep their value."""
    changes: dict[str, Any] = {}
    if route_to_responsible is not _UNSET:
        changes["route_to_responsible"] = bool(route_to_responsible)
    if default_extension is not _UNSET:
        changes["default_extension"] = _extension(default_extension)
    if default_user_id is not _UNSET:
        changes["default_user_id"] = _user_id(default_user_id, "default_user_id")
    if callback_user_id is not _UNSET:
        changes["callback_user_id"] = _user_id(callback_user_id, "callback_user_id")
    with transaction.atomic():
        routing, _ = LineRouting.objects.select_for_update().get_or_create(line=line)
        for field, value in changes.items():
            setattr(routing, field, value)
        routing.save()
    return routing


def set_portal_callback_agent(portal: Portal, user_id: int | None) -> None:
    """The portal-wide callback agent (used when the line has none); None removes it."""
    agent = _user_id(user_id, "callback_user_id")
    with transaction.atomic():
        locked = Portal.objects.select_for_update().get(pk=portal.pk)
        settings = dict(locked.settings or {})
        if agent is None:
            settings.pop(PORTAL_CALLBACK_AGENT_SETTING, None)
        else:
            settings[PORTAL_CALLBACK_AGENT_SETTING] = agent
        Portal.objects.filter(pk=portal.pk).update(settings=settings)
    portal.settings = settings
