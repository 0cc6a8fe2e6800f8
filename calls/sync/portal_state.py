"""What every sync of a portal's calls reads about the portal, kept in process memory.

A call's sync needs the portal (with its token pair, for the Bitrix24 client, and the installing admin's user
id), its call settings and its users' settings, the extension map and the connections' overrides, and its lines
(which numbers are company lines, and their settings). Read with each sync they were most of the worker's CPU
per call (a five-table SELECT compiled anew every time, the extension map's JSON decoded with it), for rows
that change a few times a day. Each process keeps them per portal, stamped with the portal's epoch
(``calls.policy_epoch``), which every sync reads from the shared cache:

* whatever changes one of these rows moves the epoch, and every process reads them again for its next call:
  a setting changed in the app applies to the next call, as it did when it was read with each sync;
* an entry older than ``CALLS_POLICY_MEMORY_SECONDS`` is read again anyway: the bound on what a change
  nothing announces (SQL run by hand) can go unseen;
* without the cache (Redis down) nothing is kept: each sync reads the rows itself;
* entries are per portal id and hold only that portal's rows: no call ever sees another portal's.

The model instances in an entry are shared by the process's syncs and only read; a sync gets its own copy of
the portal row (``PortalState.portal_copy``).
"""

from __future__ import annotations

import copy
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from django.core.cache import cache
from django.db.models import Exists, OuterRef

from calls.extensions import extension_map
from calls.lines.selectors import all_company_lines
from calls.models import ExtensionDirectory, ExtensionOverride, LineSettings, UserCallSettings
from calls.policy_epoch import policy_epoch_key
from calls.settings import selectors as settings_selectors
from calls.sync.conf import sync_settings
from portals.models import Portal

logger = logging.getLogger(__name__)

_MAX_PORTALS = 2000  # entries kept per process; the least recently used goes first


@dataclass(frozen=True)
class PortalState:
    portal: Portal  # with ``credential``, ``extension_directory`` and ``call_settings`` read along
    user_rows: tuple[UserCallSettings, ...]  # users whose settings differ from the defaults
    overrides: Mapping[int, Mapping[str, int]]  # connection id -> {extension: user id}
    line_settings: Mapping[tuple[int, str], LineSettings]  # (connection id, number) of active lines
    company_lines: frozenset[str]  # the numbers the portal's PBXs declare (and still list)

    @property
    def directory(self) -> ExtensionDirectory | None:
        return getattr(self.portal, "extension_directory", None)

    @property
    def installer_user_id(self) -> int | None:
        credential = getattr(self.portal, "credential", None)
        return credential.user_id if credential is not None else None

    def portal_copy(self) -> Portal:
        """The portal row for one sync: what the sync sets on it stays with that sync."""
        return copy.copy(self.portal)


_memory: OrderedDict[int, tuple[str, float, PortalState]] = OrderedDict()


def of(portal_id: int) -> PortalState:
    """The portal's state as its rows are now (from memory when nothing changed since it was read)."""
    epoch = _epoch(portal_id)
    now = time.monotonic()
    kept = _memory.get(portal_id)
    if epoch is not None and kept is not None and kept[0] == epoch and now - kept[1] < _max_age():
        _memory.move_to_end(portal_id)
        return kept[2]
    state = read(portal_id)
    if epoch is None:
        _memory.pop(portal_id, None)
        return state
    _memory[portal_id] = (epoch, now, state)
    _memory.move_to_end(portal_id)
    while len(_memory) > _MAX_PORTALS:
        _memory.popitem(last=False)
    return state


def read(portal_id: int) -> PortalState:
    """The portal's state read from the database (no memory)."""
    # The credential's tokens come along: a sync that calls Bitrix24 builds its client from them. Most portals
    # have no user settings, overrides or line settings: no query for what does not exist.
    portal = (Portal.objects.select_related("credential", "extension_directory", "call_settings")
              .defer("application_token")
              .annotate(has_user_rows=Exists(UserCallSettings.objects.filter(portal_id=OuterRef("pk"))),
                        has_overrides=Exists(ExtensionOverride.objects.filter(connection__portal_id=OuterRef("pk"))),
                        has_line_settings=Exists(LineSettings.objects.filter(
                            line__connection__portal_id=OuterRef("pk"))))
              .get(pk=portal_id))
    return PortalState(
        portal=portal,
        user_rows=tuple(settings_selectors.user_rows(portal_id)) if portal.has_user_rows else (),
        overrides=extension_map.overrides_of_portal(portal_id) if portal.has_overrides else {},
        line_settings=settings_selectors.line_rows(portal_id) if portal.has_line_settings else {},
        company_lines=all_company_lines(portal_id),
    )


def _epoch(portal_id: int) -> str | None:
    """The portal's epoch in the shared cache (one is set when there is none); None without the cache."""
    key = policy_epoch_key(portal_id)
    try:
        epoch = cache.get(key)
        if epoch is None:
            cache.add(key, secrets.token_hex(8), None)
            epoch = cache.get(key)
    except Exception:
        logger.warning("call policy epoch unavailable; reading the portal's rows", exc_info=True)
        return None
    return epoch if isinstance(epoch, str) else None


def _max_age() -> float:
    return sync_settings().policy_memory_seconds
