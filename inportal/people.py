"""The portal's Bitrix24 users as the pages show them (names, photos, extensions), read with ``user.get``.

Kept in the cache for a few minutes per portal: every page that names a user needs the list, and
Bitrix24's rate budget is shared with the calls. ``refresh=True`` reads it again (the Employees page's
"sync now"). When Bitrix24 cannot be asked, names fall back to ``#<id>``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from django.core.cache import cache

from b24client import errors as b24errors
from portals.errors import PortalUnavailable
from portals.models import Portal
from portals.services import bitrix24_client_for

logger = logging.getLogger(__name__)

CACHE_SECONDS = 300


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    photo: str
    active: bool
    extension: str  # UF_PHONE_INNER as Bitrix24 has it ("" = none)
    position: str = ""


def _key(portal: Portal) -> str:
    # member_id, not the row id: a reinstalled or re-created portal never reads another's list
    return f"inportal:people:{portal.member_id}"


def _person(user: dict[str, Any]) -> Person | None:
    raw_id = str(user.get("ID") or "")
    if not raw_id.isdigit():
        return None
    name = " ".join(p for p in (str(user.get("NAME") or "").strip(), str(user.get("LAST_NAME") or "").strip()) if p)
    active = user.get("ACTIVE")
    return Person(
        id=int(raw_id),
        name=name or str(user.get("EMAIL") or "") or f"#{raw_id}",
        photo=str(user.get("PERSONAL_PHOTO") or ""),
        active=active is True or str(active).upper() in {"Y", "1", "TRUE"},
        extension=str(user.get("UF_PHONE_INNER") or "").strip(),
        position=str(user.get("WORK_POSITION") or ""),
    )


class PeopleUnavailable(Exception):
    pass


def portal_people(portal: Portal, *, refresh: bool = False) -> dict[int, Person]:
    """Every user ``user.get`` returns for the portal (employees and extranet, active or not)."""
    if not refresh:
        cached = cache.get(_key(portal))
        if cached is not None:
            return {int(k): Person(**v) for k, v in cached.items()}
    try:
        users = list(bitrix24_client_for(portal.pk).list_all("user.get", {"sort": "ID", "order": "ASC"}))
    except (PortalUnavailable, b24errors.Bitrix24Error) as exc:
        logger.info("portal %s: user.get failed (%s)", portal.pk, exc)
        raise PeopleUnavailable(str(exc)) from exc
    people = {p.id: p for p in (_person(u) for u in users if isinstance(u, dict)) if p is not None}
    cache.set(_key(portal), {str(k): asdict(v) for k, v in people.items()}, CACHE_SECONDS)
    return people


def names_of(portal: Portal, user_ids: set[int]) -> dict[int, str]:
    """Display names for these users; ``#<id>`` for anyone Bitrix24 did not name (or when it is down)."""
    wanted = {int(u) for u in user_ids if u is not None}
    if not wanted:
        return {}
    try:
        people = portal_people(portal)
    except PeopleUnavailable:
        people = {}
    return {uid: people[uid].name if uid in people else f"#{uid}" for uid in wanted}
