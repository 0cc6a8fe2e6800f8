"""The invalidation epoch of a connection's PBX authentication memory.

``calls.pbx_api.authentication`` keeps each connection's row, portal and decrypted keys in process memory,
stamped with the connection's epoch, which every request reads from the shared cache: a new epoch makes
every process reload that connection on its next request. Whatever changes a connection, its secrets or
its portal moves the epoch (receivers wired in ``calls.apps``; bulk updates of connections through their
queryset, of portals through ``portals.signals.portal_changed``).
"""

from __future__ import annotations

from collections.abc import Iterable

from calls import epochs


def auth_epoch_key(public_id: str) -> str:
    return f"pbx:auth:epoch:{public_id}"


def forget_auth_material(public_ids: Iterable[str]) -> None:
    """Every process reloads these connections (row, portal, keys) on its next PBX request (``calls.epochs``)."""
    epochs.move([auth_epoch_key(public_id) for public_id in public_ids if public_id], "PBX authentication")
