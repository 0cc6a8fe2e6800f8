"""The invalidation epoch of a connection's PBX authentication memory.

``calls.pbx_api.authentication`` keeps each connection's row, portal and decrypted keys in process memory,
stamped with the connection's epoch, which every request reads from the shared cache: a new epoch makes
every process reload that connection on its next request. Whatever changes a connection, its secrets or
its portal moves the epoch (receivers wired in ``calls.apps``; bulk updates of connections through their
queryset, of portals through ``portals.signals.portal_changed``).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable

from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)


def auth_epoch_key(public_id: str) -> str:
    return f"pbx:auth:epoch:{public_id}"


def forget_auth_material(public_ids: Iterable[str]) -> None:
    """Every process reloads these connections (row, portal, keys) on its next PBX request.

    Called inside the changing transaction, the epochs move again once the change is committed: a
    request in between could otherwise reload the old rows under the new epoch.
    """
    ids = [public_id for public_id in public_ids if public_id]
    if not ids:
        return
    _new_epochs(ids)
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: _new_epochs(ids))


def _new_epochs(public_ids: list[str]) -> None:
    try:
        cache.set_many({auth_epoch_key(public_id): secrets.token_hex(8) for public_id in public_ids}, None)
    except Exception:
        # The cache is down: requests cannot read the epoch either, and then do not use the memory.
        logger.warning("could not move the PBX authentication epoch", exc_info=True)
