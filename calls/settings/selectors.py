"""Reads of the call-handling settings: for the app's pages (plain dicts) and for a call's policy.

Every function is scoped to one portal. Users are shown with the names the extension directory read
from Bitrix24 (``user.get``); an id the directory does not know has ``name`` None.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone

from calls import policy_choices as sm
from calls.models import Call, ExtensionDirectory, ExtensionOverride, PbxConnection, PbxLine, SeenLineNumber
from calls.models.settings import CardMode, LineSettings, PortalCallSettings, UserCallSettings
from portals.models import Portal, PortalCredential

from . import NotFound

# How far back the pages look for extensions and numbers the PBX used.
RECENT_DAYS = 30


# --- rows (also read by the call state machine's ``policy_for``) --------------------------------------------


def portal_row(portal: Portal) -> PortalCallSettings:
    """The portal's settings row, or an unsaved one with every default (no row yet).

    Reads nothing when the row was loaded with the portal (``select_related("call_settings")``).
    """
    try:
        return portal.call_settings
    except PortalCallSettings.DoesNotExist:
        return PortalCallSettings(portal=portal)


def recordings_on(portal_id: int) -> bool:
    """The portal's recordings switch, read afresh (for the PBX's uploads)."""
    switch = PortalCallSettings.objects.filter(portal_id=portal_id).values_list("recordings", flat=True)
    return next(iter(switch), True)


def user_rows(portal_id: int) -> list[UserCallSettings]:
    """Users whose settings differ from the defaults (the only ones with a row)."""
    return list(UserCallSettings.objects.filter(portal_id=portal_id))


def line_row(connection_id: int | None, number: str) -> LineSettings | None:
    """The settings of a connection's line, by its E.164 number (None: none set, or no such line)."""
    if connection_id is None or not number:
        return None
    return (LineSettings.objects.filter(line__connection_id=connection_id, line__number=number,
                                        line__removed_at__isnull=True)
            .first())


def line_rows(portal_id: int) -> dict[tuple[int, str], LineSettings]:
    """The settings of the portal's lines that have any, by (connection id, E.164 number): ``line_row`` of
    each of the portal's lines at once."""
    rows = LineSettings.objects.filter(line__connection__portal_id=portal_id, line__removed_at__isnull=True)
    return {(s.line.connection_id, s.line.number): s for s in rows.select_related("line")}


def installer_user_id(portal_id: int) -> int | None:
    return PortalCredential.objects.filter(portal_id=portal_id).values_list("user_id", flat=True).first()


# --- names --------------------------------------------------------------------------------------------------


def _directory(portal_id: int) -> ExtensionDirectory | None:
    return ExtensionDirectory.objects.filter(portal_id=portal_id).first()


def directory_users(directory: ExtensionDirectory | None) -> list[dict[str, Any]]:
    return [u for u in (directory.users if directory else None) or [] if isinstance(u, dict) and u.get("id")]


def active_user_ids(portal_id: int) -> frozenset[int] | None:
    """The portal's active employees as last synced, or None when the directory has no user list yet."""
    directory = _directory(portal_id)
    users = directory_users(directory)
    if not users:
        return None
    return frozenset(int(u["id"]) for u in users if u.get("active", True))


def _names(portal_id: int) -> dict[int, str]:
    return {int(u["id"]): u.get("name") or "" for u in directory_users(_directory(portal_id))}


def _person(user_id: int | None, names: dict[int, str]) -> dict[str, Any] | None:
    if user_id is None:
        return None
    return {"id": user_id, "name": names.get(user_id)}


# --- portal ---------------------------------------------------------------------------------------------------


def _portal(portal_id: int) -> Portal:
    portal = Portal.objects.select_related("call_settings").filter(pk=portal_id).first()
    if portal is None:
        raise NotFound(f"no portal {portal_id}")
    return portal


def portal_settings(portal_id: int) -> dict[str, Any]:
    """The portal's call handling, with the missed-call owner's fallback chain as it applies now."""
    portal = _portal(portal_id)
    row = portal_row(portal)
    return {
        "crm_create": row.crm_create,
        "route_to_responsible": row.route_to_responsible,
        "missed_call_owner": {
            "strategy": row.missed_call_strategy,
            "user_id": row.missed_call_user_id,
            "chain": missed_call_owner_chain(portal_id),
        },
        "add_to_chat": row.add_to_chat,
        "default_country": portal.default_country,
        "recordings": row.recordings,
        "default_user_id": row.default_user_id,
        "callback_user_id": row.callback_user_id,
    }


def non_default_settings(portal_id: int) -> list[tuple[str, Any, Any]]:
    """(setting, value, default) of every portal setting that differs from its default, and how many users
    and lines have settings of their own (for the vendor's console)."""
    portal = _portal(portal_id)
    row = portal_row(portal)
    out = []
    for field in PortalCallSettings._meta.concrete_fields:
        if field.name in ("id", "portal", "updated_at"):
            continue
        default = field.get_default()
        if getattr(row, field.attname) != default:
            out.append((field.name, getattr(row, field.attname), default))
    users = UserCallSettings.objects.filter(portal_id=portal_id).count()
    lines = LineSettings.objects.filter(line__connection__portal_id=portal_id).count()
    out += [(name, count, 0) for name, count in (("users with own settings", users),
                                                  ("lines with own settings", lines)) if count]
    return out


def missed_call_owner_chain(portal_id: int, line_id: int | None = None) -> list[dict[str, Any]]:
    """Who owns a missed incoming call, link by link, in the order the state machine tries them
    (``MISSED_CALL_OWNER_CHAIN``): the first link naming a user whose calls are registered wins.

    ``line_id``: the chain of that line's calls (else every line with an owner of its own is listed).
    """
    portal = _portal(portal_id)
    row = portal_row(portal)
    names = _names(portal_id)
    lines = LineSettings.objects.filter(line__connection__portal_id=portal_id, line__removed_at__isnull=True,
                                        missed_call_owner_id__isnull=False).select_related("line")
    if line_id is not None:
        lines = lines.filter(line_id=line_id)
    not_registered = {r.user_id for r in user_rows(portal_id) if not r.register_calls}
    strategy = row.missed_call_strategy
    chain: list[dict[str, Any]] = []
    for link in sm.MISSED_CALL_OWNER_CHAIN:
        item: dict[str, Any] = {"link": link}
        if link == sm.OWNER_STRATEGY:
            item["strategy"] = strategy
            item["user"] = _person(row.missed_call_user_id, names) if strategy == sm.MISSED_FIXED else None
        elif link == sm.OWNER_LINE:
            item["lines"] = [{"line_id": s.line_id, "number": s.line.number,
                              "user": _person(s.missed_call_owner_id, names)} for s in lines.order_by("line__number")]
        elif link == sm.OWNER_PORTAL_DEFAULT:
            item["user"] = _person(row.default_user_id, names)
        else:
            item["user"] = _person(installer_user_id(portal_id), names)
        for person in [item.get("user"), *(x["user"] for x in item.get("lines", []))]:
            if person is not None:
                person["calls_registered"] = person["id"] not in not_registered
        chain.append(item)
    return chain


# --- employees ------------------------------------------------------------------------------------------------


def employees(portal_id: int) -> dict[str, Any]:
    """Every Bitrix24 user the extension directory read, with their extension, this app's overrides,
    their call settings; extensions the PBX used that nobody owns; extensions several users share;
    the directory's last sync."""
    _portal(portal_id)
    directory = _directory(portal_id)
    conflicts = {str(ext): [int(u) for u in ids] for ext, ids in ((directory.conflicts if directory else {}) or {}).items()}
    shared_by_user: dict[int, list[str]] = defaultdict(list)
    for ext, ids in conflicts.items():
        for user_id in ids:
            shared_by_user[user_id].append(ext)
    overrides: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for connection_id, connection_name, ext, user_id in (
        ExtensionOverride.objects.filter(connection__portal_id=portal_id)
        .order_by("connection_id", "extension")
        .values_list("connection_id", "connection__name", "extension", "user_id")
    ):
        overrides[int(user_id)].append({"connection_id": connection_id, "connection_name": connection_name,
                                        "extension": ext})
    rows = {r.user_id: r for r in user_rows(portal_id)}
    people = []
    for user in sorted(directory_users(directory), key=lambda u: (not u.get("active", True), u.get("name") or "")):
        user_id = int(user["id"])
        row = rows.get(user_id)
        people.append({
            "id": user_id,
            "name": user.get("name") or "",
            "photo": user.get("photo") or None,
            "active": bool(user.get("active", True)),
            "extension": user.get("extension") or None,
            "overrides": overrides.get(user_id, []),
            "register_calls": row.register_calls if row else True,
            "card_mode": row.card_mode if row else CardMode.RING.value,
            "shared_extension": bool(shared_by_user.get(user_id)),
        })
    return {
        "users": people,
        "unowned_extensions": unowned_extensions(portal_id),
        "shared_extensions": [{"extension": ext, "user_ids": ids} for ext, ids in sorted(conflicts.items())],
        "sync": {
            "synced_at": directory.synced_at.isoformat() if directory and directory.synced_at else None,
            "attempted_at": directory.attempted_at.isoformat() if directory and directory.attempted_at else None,
            "error": (directory.last_error or None) if directory else None,
            "user_count": directory.user_count if directory else 0,
        },
    }


def user_settings(portal_id: int, user_id: int) -> dict[str, Any]:
    row = UserCallSettings.objects.filter(portal_id=portal_id, user_id=user_id).first()
    overrides = list(ExtensionOverride.objects.filter(connection__portal_id=portal_id, user_id=user_id)
                     .order_by("connection_id").values("connection_id", "extension"))
    return {
        "id": user_id,
        "register_calls": row.register_calls if row else True,
        "card_mode": row.card_mode if row else CardMode.RING.value,
        "overrides": overrides,
    }


def _recent_calls(portal_id: int):
    since = timezone.now() - timedelta(days=RECENT_DAYS)
    return Call.objects.filter(portal_id=portal_id).filter(Q(started_at__gte=since) | Q(started_at=None,
                                                                                         created_at__gte=since))


def unowned_extensions(portal_id: int) -> list[dict[str, Any]]:
    """Extensions the PBX named in recent calls that map to nobody now (UF_PHONE_INNER or an override)."""
    directory = _directory(portal_id)
    mapped = {str(ext) for ext in ((directory.users_by_extension if directory else {}) or {})}
    overridden = set(ExtensionOverride.objects.filter(connection__portal_id=portal_id)
                     .values_list("connection_id", "extension"))
    seen: dict[tuple[int | None, str], dict[str, Any]] = {}
    rows = (_recent_calls(portal_id).exclude(unmapped_extensions=[])
            .values_list("connection_id", "unmapped_extensions", "started_at", "created_at"))
    for connection_id, extensions, started_at, created_at in rows:
        when = started_at or created_at
        for ext in extensions or []:
            ext = str(ext)
            if ext in mapped or (connection_id, ext) in overridden:
                continue
            entry = seen.setdefault((connection_id, ext), {"extension": ext, "connection_id": connection_id,
                                                           "calls": 0, "last_seen": when})
            entry["calls"] += 1
            entry["last_seen"] = max(entry["last_seen"], when)
    names = dict(PbxConnection.objects.filter(portal_id=portal_id).values_list("pk", "name"))
    return [{**e, "connection_name": names.get(e["connection_id"]), "last_seen": e["last_seen"].isoformat()}
            for e in sorted(seen.values(), key=lambda e: (-e["calls"], e["extension"]))]


# --- lines ----------------------------------------------------------------------------------------------------


def display_name(line: PbxLine) -> str:
    """The name Bitrix24 shows for a line: the admin's, else the PBX's, else the number."""
    try:
        admin_name = line.settings.name
    except LineSettings.DoesNotExist:
        admin_name = ""
    return admin_name or line.name or line.number


def _line_view(line: PbxLine) -> dict[str, Any]:
    try:
        row = line.settings
    except LineSettings.DoesNotExist:
        row = LineSettings(line=line)
    return {
        "id": line.pk,
        "connection_id": line.connection_id,
        "connection_name": line.connection.name,
        "number": line.number,
        "pbx_name": line.name,
        "name": row.name,
        "shown_as": display_name(line),
        "added_by_admin": line.added_by_admin,
        "registered_in_bitrix24": line.bitrix_line_registered,
        "sync_error": line.sync_error or None,
        "enabled": row.enabled,
        "route_to_responsible": row.route_to_responsible,
        "default_extension": row.default_extension or None,
        "default_user_id": row.default_user_id,
        "callback_user_id": row.callback_user_id,
        "missed_call_owner_id": row.missed_call_owner_id,
        "crm_source": row.crm_source or None,
    }


def _lines(portal_id: int):
    return (PbxLine.objects.filter(connection__portal_id=portal_id, removed_at__isnull=True)
            .select_related("connection", "settings").order_by("connection_id", "number"))


def lines(portal_id: int) -> list[dict[str, Any]]:
    return [_line_view(line) for line in _lines(portal_id)]


def line(portal_id: int, line_id: int) -> dict[str, Any]:
    found = _lines(portal_id).filter(pk=line_id).first()
    if found is None:
        raise NotFound(f"no line {line_id} on portal {portal_id}")
    return _line_view(found)


def undeclared_lines(portal_id: int) -> list[dict[str, Any]]:
    """Numbers calls came in on (or went out from) that no PBX of the portal declared (``SeenLineNumber``),
    most recent first: the admin may add them as lines on purpose (``services.declare_line``)."""
    declared = set(PbxLine.objects.filter(connection__portal_id=portal_id, removed_at__isnull=True)
                   .values_list("connection_id", "number"))
    seen = (SeenLineNumber.objects.filter(connection__portal_id=portal_id).select_related("connection")
            .order_by("-last_seen_at"))
    return [{"number": row.number, "connection_id": row.connection_id, "connection_name": row.connection.name,
             "first_seen": row.first_seen_at.isoformat(), "last_seen": row.last_seen_at.isoformat()}
            for row in seen if (row.connection_id, row.number) not in declared]


def connection_ids(portal_id: int, ids: Iterable[int]) -> set[int]:
    """Those of ``ids`` that are connections of this portal."""
    return set(PbxConnection.objects.filter(portal_id=portal_id, pk__in=list(ids)).values_list("pk", flat=True))
