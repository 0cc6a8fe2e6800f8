"""Writes of the call-handling settings (see the package docstring for the contract).

Each service validates everything it was given before it changes anything: bad input raises
``ValidationError`` naming every bad field, and nothing is written. Unknown keys are errors too, so a
typo never passes silently. A setting applies to the next call: calls read their policy afresh at each
sync (from each worker's memory of the portal, which every saved row moves on: ``calls.policy_epoch``), and
what ``/route`` cached is dropped (``forget_portal``) with every change that can alter it.
Each returns ``Saved``: the new view of what changed (the selector's dict, for the page) and the work
its caller queues after the commit (``calls.dispatch.queue``; services never import tasks).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from calls import phones
from calls.followups import FollowUps
from calls.models import ExtensionOverride, PbxConnection, PbxLine
from calls.models.settings import (
    CardMode,
    CrmCreate,
    LineSettings,
    MissedCallStrategy,
    PortalCallSettings,
    UserCallSettings,
)
from calls.routing.lookup import forget_portal
from portals.models import Portal

from . import NotFound, selectors
from . import validation as check

PORTAL_FIELDS = ("crm_create", "route_to_responsible", "missed_call_owner", "add_to_chat", "default_country",
                 "recordings", "default_user_id", "callback_user_id")
USER_FIELDS = ("register_calls", "card_mode", "overrides")
LINE_FIELDS = ("name", "enabled", "route_to_responsible", "default_extension", "default_user_id",
               "callback_user_id", "missed_call_owner_id", "crm_source")


@dataclass(frozen=True)
class Saved:
    view: dict[str, Any]  # what the selector shows for what was changed
    follow_ups: FollowUps = field(default_factory=FollowUps)


def _portal(portal_id: int) -> Portal:
    portal = Portal.objects.filter(pk=portal_id).first()
    if portal is None:
        raise NotFound(f"no portal {portal_id}")
    return portal


# --- portal ---------------------------------------------------------------------------------------------------


def update_portal_settings(portal_id: int, changes: Mapping[str, Any]) -> Saved:
    """Change the portal's call handling; the view is ``selectors.portal_settings``.

    ``changes``: any of ``crm_create`` (off|incoming|outgoing|both), ``route_to_responsible`` (bool),
    ``missed_call_owner`` ({"strategy": responsible|last_rang|fixed, "user_id": for fixed}),
    ``add_to_chat`` (bool), ``default_country`` (ISO 3166-1 alpha-2), ``recordings`` (bool),
    ``default_user_id``, ``callback_user_id`` (Bitrix24 user ids, None to clear).
    """
    portal = _portal(portal_id)
    errors = check.Errors()
    errors.unknown(changes, PORTAL_FIELDS)
    active = selectors.active_user_ids(portal_id)
    current = selectors.portal_row(portal)
    row: dict[str, Any] = {}
    country: str | None = None
    for name in ("route_to_responsible", "add_to_chat", "recordings"):
        if name in changes:
            row[name] = check.boolean(errors, name, changes[name])
    if "crm_create" in changes:
        row["crm_create"] = check.choice(errors, "crm_create", changes["crm_create"], CrmCreate.values)
    for name in ("default_user_id", "callback_user_id"):
        if name in changes:
            row[name] = check.user_id(errors, name, changes[name], active)
    if "default_country" in changes:
        country = check.country(errors, "default_country", changes["default_country"])
    if "missed_call_owner" in changes:
        row.update(_missed_call_owner(errors, changes["missed_call_owner"], current, active))
    errors.raise_if_any()

    with transaction.atomic():
        settings, _created = PortalCallSettings.objects.select_for_update().get_or_create(portal_id=portal_id)
        for name, value in row.items():
            setattr(settings, name, value)
        settings.save()
        if country is not None and country != portal.default_country:
            portal.default_country = country
            # An ORM save: the PBX API's in-process auth memory (which holds the portal) sees it at once.
            portal.save(update_fields=["default_country", "updated_at"])
        forget_portal(portal_id)
    return Saved(selectors.portal_settings(portal_id))


def _missed_call_owner(errors: check.Errors, value: Any, current: PortalCallSettings,
                       active: frozenset[int] | None) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        errors.add("missed_call_owner", _('Must be an object: {"strategy": ..., "user_id": ...}.'))
        return {}
    for name in sorted(set(value) - {"strategy", "user_id"}):
        errors.add(f"missed_call_owner.{name}", _("Unknown setting."))
    strategy = value.get("strategy", current.missed_call_strategy)
    strategy = check.choice(errors, "missed_call_owner.strategy", strategy, MissedCallStrategy.values)
    changes: dict[str, Any] = {}
    if strategy is not None:
        changes["missed_call_strategy"] = strategy
    if "user_id" in value:
        changes["missed_call_user_id"] = check.user_id(errors, "missed_call_owner.user_id", value["user_id"], active,
                                                       required=strategy == MissedCallStrategy.FIXED)
    elif strategy == MissedCallStrategy.FIXED and current.missed_call_user_id is None:
        errors.add("missed_call_owner.user_id", _("Choose the user who owns missed calls."))
    return changes


# --- users ------------------------------------------------------------------------------------------------------


def update_user_settings(portal_id: int, user_id: int, changes: Mapping[str, Any]) -> Saved:
    """A Bitrix24 user's call settings; the view is ``selectors.user_settings``.

    ``changes``: any of ``register_calls`` (bool), ``card_mode`` (ring|answer|never), ``overrides``
    ({connection id: extension on that PBX, or "" / None to use their UF_PHONE_INNER there}).
    """
    _portal(portal_id)
    errors = check.Errors()
    errors.unknown(changes, USER_FIELDS)
    user = check.user_id(errors, "user_id", user_id, selectors.active_user_ids(portal_id), required=True)
    row: dict[str, Any] = {}
    if "register_calls" in changes:
        row["register_calls"] = check.boolean(errors, "register_calls", changes["register_calls"])
    if "card_mode" in changes:
        row["card_mode"] = check.choice(errors, "card_mode", changes["card_mode"], CardMode.values)
    overrides = _overrides(errors, portal_id, user, changes["overrides"]) if "overrides" in changes else {}
    errors.raise_if_any()
    assert user is not None

    with transaction.atomic():
        if row:
            settings, _created = UserCallSettings.objects.select_for_update().get_or_create(
                portal_id=portal_id, user_id=user)
            for name, value in row.items():
                setattr(settings, name, value)
            if settings.is_default:
                settings.delete()  # only users who differ from the defaults keep a row
            else:
                settings.save()
        for connection_id, extension in overrides.items():
            _set_override(connection_id, user, extension)
    return Saved(selectors.user_settings(portal_id, user))


def _overrides(errors: check.Errors, portal_id: int, user_id: int | None, value: Any) -> dict[int, str]:
    if not isinstance(value, Mapping):
        errors.add("overrides", _("Must be an object: {connection id: extension}."))
        return {}
    wanted: dict[int, str] = {}
    for key, extension in value.items():
        field = f"overrides.{key}"
        try:
            connection_id = int(key)
        except (TypeError, ValueError):
            errors.add(field, _("Unknown PBX connection."))
            continue
        clean = check.extension(errors, field, "" if extension is None else extension)
        if clean is not None:
            wanted[connection_id] = clean
    own = selectors.connection_ids(portal_id, wanted)
    for connection_id in sorted(set(wanted) - own):
        errors.add(f"overrides.{connection_id}", _("Unknown PBX connection."))
    for connection_id, extension in wanted.items():
        if not extension or connection_id not in own:
            continue
        holder = (ExtensionOverride.objects.filter(connection_id=connection_id, extension=extension)
                  .exclude(user_id=user_id).values_list("user_id", flat=True).first())
        if holder is not None:
            errors.add(f"overrides.{connection_id}",
                       _("Extension %(ext)s is already given to user %(user)s on this PBX.") % {"ext": extension,
                                                                                              "user": holder})
    return {k: v for k, v in wanted.items() if k in own}


def _set_override(connection_id: int, user_id: int, extension: str) -> None:
    # Saved and deleted row by row: the signal receivers drop the routing answers cached for the portal.
    for stale in ExtensionOverride.objects.filter(connection_id=connection_id, user_id=user_id).exclude(
            extension=extension):
        stale.delete()
    if extension and not ExtensionOverride.objects.filter(connection_id=connection_id, user_id=user_id).exists():
        try:
            with transaction.atomic():
                ExtensionOverride.objects.create(connection_id=connection_id, extension=extension, user_id=user_id)
        except IntegrityError:
            from django.core.exceptions import ValidationError

            raise ValidationError({f"overrides.{connection_id}": [
                _("Extension %(ext)s was just given to another user on this PBX.") % {"ext": extension}]}) from None


def request_employee_sync(portal_id: int) -> FollowUps:
    """Read the portal's users from Bitrix24 again, in the background (the list shows when it is done):
    the work for the caller to queue."""
    _portal(portal_id)
    return FollowUps(sync_extensions=[portal_id])


# --- lines ------------------------------------------------------------------------------------------------------


def _line(portal_id: int, line_id: int) -> PbxLine:
    try:
        line_pk = int(line_id)
    except (TypeError, ValueError):
        raise NotFound(f"no line {line_id!r}") from None
    line = (PbxLine.objects.select_related("connection").filter(pk=line_pk, connection__portal_id=portal_id,
                                                                 removed_at__isnull=True).first())
    if line is None:
        raise NotFound(f"no line {line_id} on portal {portal_id}")
    return line


def update_line_settings(portal_id: int, line_id: int, changes: Mapping[str, Any]) -> Saved:
    """One external line's settings; the view is ``selectors.line`` (a new name: the line's sync follows).

    ``changes``: any of ``name`` (shown in Bitrix24; "" for the PBX's), ``enabled`` (bool: register this
    line's calls), ``route_to_responsible`` (bool), ``default_extension`` (where ``/route`` sends calls
    nobody's manager takes; ""), ``default_user_id``, ``callback_user_id``, ``missed_call_owner_id``
    (user ids or None), ``crm_source`` (a CRM source STATUS_ID sent as register's CRM_SOURCE; "").
    """
    line = _line(portal_id, line_id)
    errors = check.Errors()
    errors.unknown(changes, LINE_FIELDS)
    active = selectors.active_user_ids(portal_id)
    row: dict[str, Any] = {}
    for name in ("enabled", "route_to_responsible"):
        if name in changes:
            row[name] = check.boolean(errors, name, changes[name])
    for name in ("default_user_id", "callback_user_id", "missed_call_owner_id"):
        if name in changes:
            row[name] = check.user_id(errors, name, changes[name], active)
    if "default_extension" in changes:
        row["default_extension"] = check.extension(errors, "default_extension", changes["default_extension"] or "")
    if "crm_source" in changes:
        row["crm_source"] = check.crm_source(errors, "crm_source", changes["crm_source"] or "")
    if "name" in changes:
        row["name"] = check.text(errors, "name", changes["name"] or "", max_length=255)
    errors.raise_if_any()

    follow_ups = FollowUps()
    with transaction.atomic():
        settings, _created = LineSettings.objects.select_for_update().get_or_create(line=line)
        renamed = "name" in row and row["name"] != settings.name
        for name, value in row.items():
            setattr(settings, name, value)
        settings.save()  # its receiver drops the routing answers cached for the portal
        if renamed:
            follow_ups.add(_resync_line(line))
    return Saved(selectors.line(portal_id, line.pk), follow_ups)


def _resync_line(line: PbxLine) -> FollowUps:
    """Bitrix24 shows the line's name: mark it out of date, to be pushed by the line sync (the sweeper
    retries a push that fails)."""
    PbxLine.objects.filter(pk=line.pk).update(bitrix_line_registered=False)
    return FollowUps(sync_lines=[line.connection_id])


def declare_line(portal_id: int, connection_id: int, number: str) -> Saved:
    """Add a number the PBX used but never declared as a line of ``connection_id``, on purpose.

    It is registered in Bitrix24 like the PBX's own lines, and kept when the PBX's next ``PUT /lines``
    does not list it (``PbxLine.added_by_admin``).
    """
    _portal(portal_id)
    errors = check.Errors()
    connection = PbxConnection.objects.select_related("portal").filter(pk=connection_id, portal_id=portal_id).first()
    if connection is None:
        errors.add("connection_id", _("Unknown PBX connection."))
        errors.raise_if_any()
    assert connection is not None
    try:
        e164 = phones.normalize_strict(number if isinstance(number, str) else "", connection.portal.default_country)
    except phones.InvalidPhoneNumber:
        errors.add("number", _("Not a valid phone number (numbers without a country code are read as %(country)s).")
                   % {"country": connection.portal.default_country})
        errors.raise_if_any()
        raise  # unreachable: raise_if_any raised
    follow_ups = FollowUps()
    with transaction.atomic():
        line, created = PbxLine.objects.select_for_update().get_or_create(
            connection=connection, number=e164, defaults={"added_by_admin": True})
        if not created and line.removed_at is not None:
            line.removed_at = None
            line.added_by_admin = True
            line.bitrix_line_registered = False
            line.save(update_fields=["removed_at", "added_by_admin", "bitrix_line_registered", "updated_at"])
        if created or not line.bitrix_line_registered:
            follow_ups.add(_resync_line(line))
    return Saved(selectors.line(portal_id, line.pk), follow_ups)
