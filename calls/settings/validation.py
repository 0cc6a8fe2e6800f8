"""Field checks for the settings services: each returns the clean value or records a message for its field.

Messages are in the active language (the viewer's: the app's API activates it per request).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import phonenumbers
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

_EXTENSION = re.compile(r"^[0-9*#]{1,32}$")
# A CRM source STATUS_ID: "CALL", "WEB", "UC_3F9A2B", "1|OLCHAT".
_CRM_SOURCE = re.compile(r"^[A-Za-z0-9_|.\-]{1,50}$")


class Errors:
    """Collects field errors; ``raise_if_any`` raises them all at once (nothing has been changed yet)."""

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.fields.setdefault(field, []).append(message)

    def raise_if_any(self) -> None:
        if self.fields:
            raise ValidationError(self.fields)

    def unknown(self, given: Mapping[str, Any], allowed: Iterable[str]) -> None:
        for name in sorted(set(given) - set(allowed)):
            self.add(name, _("Unknown setting."))


def boolean(errors: Errors, field: str, value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    errors.add(field, _("Must be true or false."))
    return None


def choice(errors: Errors, field: str, value: Any, allowed: Iterable[str]) -> str | None:
    allowed = tuple(allowed)
    if isinstance(value, str) and value in allowed:
        return value
    errors.add(field, _("Must be one of: %(choices)s.") % {"choices": ", ".join(allowed)})
    return None


def user_id(errors: Errors, field: str, value: Any, active_users: frozenset[int] | None,
            *, required: bool = False) -> int | None:
    """A Bitrix24 user id (None clears it unless ``required``); ``active_users``: the portal's active users,
    when the extension directory knows them (a user not among them could not own a call)."""
    if value is None or value == "":
        if required:
            errors.add(field, _("Choose a user."))
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        errors.add(field, _("Must be a Bitrix24 user id."))
        return None
    try:
        number = int(value)
    except ValueError:
        errors.add(field, _("Must be a Bitrix24 user id."))
        return None
    if number <= 0:
        errors.add(field, _("Must be a Bitrix24 user id."))
        return None
    if active_users is not None and number not in active_users:
        errors.add(field, _("User %(id)s is not an active employee of this portal (if they joined recently, "
                            "sync the employees first).") % {"id": number})
        return None
    return number


def extension(errors: Errors, field: str, value: Any) -> str | None:
    text = value.strip() if isinstance(value, str) else None
    if text is None:
        errors.add(field, _("Must be an extension number (digits, * and #)."))
        return None
    if text and not _EXTENSION.match(text):
        errors.add(field, _("“%(value)s” is not an extension number (digits, * and # only).") % {"value": text[:40]})
        return None
    return text


def country(errors: Errors, field: str, value: Any) -> str | None:
    code = value.strip().upper() if isinstance(value, str) else ""
    if code in phonenumbers.SUPPORTED_REGIONS:
        return code
    errors.add(field, _("Must be a country code of two letters (ISO 3166-1), e.g. RU or KZ."))
    return None


def crm_source(errors: Errors, field: str, value: Any) -> str | None:
    text = value.strip() if isinstance(value, str) else None
    if text is None or (text and not _CRM_SOURCE.match(text)):
        errors.add(field, _("Must be the code of a CRM source (STATUS_ID), e.g. CALL."))
        return None
    return text


def text(errors: Errors, field: str, value: Any, *, max_length: int) -> str | None:
    if not isinstance(value, str):
        errors.add(field, _("Must be text."))
        return None
    value = value.strip()
    if len(value) > max_length:
        errors.add(field, _("At most %(n)d characters.") % {"n": max_length})
        return None
    return value
