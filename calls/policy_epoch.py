"""The invalidation epoch of what the call syncs of a portal keep in process memory.

``calls.sync.portal_facts`` keeps per portal what every sync of its calls reads (the portal and its token
pair, its call settings and users' settings, the extension map and overrides, its lines and their settings),
stamped with the portal's epoch, which each sync reads from the shared cache: a new epoch makes every process
read them again for its next call. Whatever changes one of them moves the epoch: receivers wired in
``calls.apps`` for rows saved or deleted through the ORM and for ``portals.signals.portal_changed``, and the
writers that update those rows in bulk call ``forget_portal_facts`` themselves.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable

from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)


def policy_epoch_key(portal_id: int) -> str:
    return f"calls:policy:epoch:{portal_id}"


def forget_portal_facts(portal_ids: Iterable[int | None]) -> None:
    """Every process reads these portals' facts again for its next call.

    Called inside the changing transaction, the epochs move again once the change is committed: a sync
    in between could otherwise read the old rows under the new epoch.
    """
    ids = sorted({int(portal_id) for portal_id in portal_ids if portal_id is not None})
    if not ids:
        return
    _new_epochs(ids)
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: _new_epochs(ids))


def _new_epochs(portal_ids: list[int]) -> None:
    try:
        cache.set_many({policy_epoch_key(portal_id): secrets.token_hex(8) for portal_id in portal_ids}, None)
    except Exception:
        # The cache is down: syncs cannot read the epoch either, and then do not use the memory.
        logger.warning("could not move the call policy epoch", exc_info=True)
