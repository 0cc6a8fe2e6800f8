"""Invalidation epochs in the shared cache, for what processes keep in memory between requests or syncs
(``calls.auth_epoch``: a connection's PBX authentication; ``calls.policy_epoch``: a portal's call facts).

A reader keeps rows stamped with the epoch it read from the cache and reads the rows again once the epoch has
moved. A writer moves it inside the changing transaction and again once that commits: a reader in between could
otherwise read the old rows under the new epoch and keep them.
"""

from __future__ import annotations

import logging
import secrets

from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)


def move(keys: list[str], what: str) -> None:
    """A new epoch under each key, now and once the caller's transaction commits; ``what``: for the log."""
    if not keys:
        return
    _new_epochs(keys, what)
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: _new_epochs(keys, what))


def _new_epochs(keys: list[str], what: str) -> None:
    try:
        cache.set_many({key: secrets.token_hex(8) for key in keys}, None)
    except Exception:
        # The cache is down: readers cannot read the epoch either, and then do not use their memory.
        logger.warning("could not move the %s epoch", what, exc_info=True)
