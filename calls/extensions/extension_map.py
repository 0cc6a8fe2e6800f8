"""Which Bitrix24 user is behind a PBX extension.

The portal-wide map comes from the users' ``UF_PHONE_INNER`` (read with ``user.get``, every page) and
is kept per portal in the database (``ExtensionDirectory``). Per-connection ``ExtensionOverride`` rows
win over it (two PBXs may both have a "101"). The map is refreshed when it is older than
``CALLS_EXTENSIONS_TTL`` and when a call names an extension the map does not know (at most once per
``CALLS_EXTENSIONS_MISS_INTERVAL``, so a PBX full of unmapped extensions cannot hammer ``user.get``).

A failed sync keeps the last good map: one broken ``user.get`` must never hide every agent's call
card. Users without an extension are skipped (an empty key would collect every such user), and an
extension shared by several active users goes to the lowest user id, recorded as a conflict.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from b24client import errors as b24errors
from calls.models import ExtensionDirectory, ExtensionOverride
from portals.errors import PortalUnavailable
from portals.services import bitrix24_client_for

logger = logging.getLogger(__name__)


def _ttl() -> timedelta:
    return timedelta(seconds=getattr(settings, "CALLS_EXTENSIONS_TTL", 600))


def _miss_interval() -> timedelta:
    return timedelta(seconds=getattr(settings, "CALLS_EXTENSIONS_MISS_INTERVAL", 60))


def _clean_extension(value: Any) -> str:
    return str(value).strip() if value is not None else ""


def build_map(users: Iterable[dict[str, Any]]) -> tuple[dict[str, int], dict[str, list[int]]]:
    """``({extension: user_id}, {extension: [user ids sharing it]})`` from ``user.get`` items."""
    owners: dict[str, list[int]] = {}
    for user in users:
        if not _active(user):
            continue
        ext = _clean_extension(user.get("UF_PHONE_INNER"))
        if not ext:
            continue
        try:
            user_id = int(user["ID"])
        except (KeyError, TypeError, ValueError):
            continue
        owners.setdefault(ext, []).append(user_id)
    mapping = {ext: min(ids) for ext, ids in owners.items()}
    conflicts = {ext: sorted(ids) for ext, ids in owners.items() if len(ids) > 1}
    return mapping, conflicts


def _active(user: dict[str, Any]) -> bool:
    return str(user.get("ACTIVE", True)).lower() not in {"false", "0", "n", ""}


def employee_list(users: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The users as the app's employee page lists them (what ``ExtensionDirectory.users`` holds)."""
    listed = []
    for user in users:
        try:
            user_id = int(user["ID"])
        except (KeyError, TypeError, ValueError):
            continue
        name = " ".join(str(user.get(k) or "").strip() for k in ("NAME", "LAST_NAME")).strip()
        photo = user.get("PERSONAL_PHOTO")
        listed.append({"id": user_id, "name": name or str(user.get("EMAIL") or user_id), "active": _active(user),
                       "photo": photo if isinstance(photo, str) and photo else None,
                       "extension": _clean_extension(user.get("UF_PHONE_INNER")) or None})
    return sorted(listed, key=lambda u: u["id"])


def sync_extensions(portal_id: int, *, raise_retryable: bool = False) -> ExtensionDirectory:
    """Read every user from Bitrix24 and store the map of the active ones; on failure keep the last good one.

    With ``raise_retryable`` a failure that may pass (Bitrix24 down, rate limit) is raised after it was
    recorded: used when there is no good map yet, so the caller retries rather than go on without one.
    """

    directory, _ = ExtensionDirectory.objects.get_or_create(portal_id=portal_id)
    now = timezone.now()
    try:
        client = bitrix24_client_for(portal_id)
        # Dismissed users too: the employee page shows them (with their overrides); the map skips them.
        users = list(client.list_all("user.get", {}))
    except (b24errors.Bitrix24Error, PortalUnavailable, OSError) as exc:
        ExtensionDirectory.objects.filter(pk=directory.pk).update(attempted_at=now, last_error=str(exc)[:2000])
        directory.refresh_from_db()
        logger.warning("extension sync for portal %s failed, keeping the map of %s: %s",
                       portal_id, directory.synced_at, exc)
        if raise_retryable and b24errors.is_retryable(exc):
            raise
        return directory
    mapping, conflicts = build_map(users)
    with transaction.atomic():
        ExtensionDirectory.objects.filter(pk=directory.pk).update(
            users_by_extension=mapping, conflicts=conflicts, user_count=len(users), users=employee_list(users),
            synced_at=now, attempted_at=now, last_error="",
        )
    directory.refresh_from_db()
    if conflicts:
        logger.warning("portal %s: extensions shared by several users: %s", portal_id, conflicts)
    return directory


def _stale(directory: ExtensionDirectory, now) -> bool:
    return directory.synced_at is None or now - directory.synced_at > _ttl()


def _may_retry(directory: ExtensionDirectory, now) -> bool:
    return directory.attempted_at is None or now - directory.attempted_at > _miss_interval()


_LOAD: Any = object()


def users_by_extension(portal_id: int, connection_id: int | None = None, *,
                       need: Iterable[str] = (), directory: ExtensionDirectory | None = _LOAD,
                       has_overrides: bool = True) -> dict[str, int]:
    """The extension → user map for a call on ``connection_id``, refreshed if stale or missing ``need``.

    ``directory``: the portal's row (or None: it has none yet) when the caller read it already;
    ``has_overrides=False`` when the caller knows the connection has no ``ExtensionOverride``.
    """
    now = timezone.now()
    if directory is _LOAD:
        directory = ExtensionDirectory.objects.filter(portal_id=portal_id).first()
    overrides = _overrides(connection_id) if has_overrides else {}
    wanted = {e for e in (_clean_extension(x) for x in need) if e} - set(overrides)
    if directory is None or directory.synced_at is None:
        directory = sync_extensions(portal_id, raise_retryable=True)
    elif _stale(directory, now) and _may_retry(directory, now):
        directory = sync_extensions(portal_id)
    elif wanted - set(directory.users_by_extension) and _may_retry(directory, now):
        directory = sync_extensions(portal_id)
    mapping = {str(k): int(v) for k, v in (directory.users_by_extension or {}).items()}
    mapping.update(overrides)
    return mapping


def _overrides(connection_id: int | None) -> dict[str, int]:
    if connection_id is None:
        return {}
    rows = ExtensionOverride.objects.filter(connection_id=connection_id).values_list("extension", "user_id")
    return {_clean_extension(ext): int(user_id) for ext, user_id in rows if _clean_extension(ext)}


def extension_of_user(portal_id: int, user_id: int, connection_id: int | None = None) -> str | None:
    """The extension a Bitrix24 user answers on (override first), for click-to-call and routing."""
    if connection_id is not None:
        override = (ExtensionOverride.objects.filter(connection_id=connection_id, user_id=user_id)
                    .order_by("extension").values_list("extension", flat=True).first())
        if override:
            return override
    mapping = users_by_extension(portal_id)
    matches = sorted(ext for ext, uid in mapping.items() if uid == int(user_id))
    return matches[0] if matches else None
