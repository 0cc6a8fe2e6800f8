"""The invalidation epoch of what the call syncs of a portal keep in process memory.

``calls.sync.portal_state`` keeps per portal what every sync of its calls reads (the portal and its token
pair, its call settings and users' settings, the extension map and overrides, its lines and their settings),
stamped with the portal's epoch, which each sync reads from the shared cache: a new epoch makes every process
read them again for its next call. Whatever changes one of them moves the epoch: receivers wired in
``calls.apps`` for rows saved or deleted through the ORM and for ``portals.signals.portal_changed``, and the
writers that update those rows in bulk call ``forget_portal_facts`` themselves.
"""

from __future__ import annotations

from collections.abc import Iterable

from calls import epochs


def policy_epoch_key(portal_id: int) -> str:
    return f"calls:policy:epoch:{portal_id}"


def forget_portal_facts(portal_ids: Iterable[int | None]) -> None:
    """Every process reads these portals' facts again for its next call (``calls.epochs``)."""
    ids = sorted({int(portal_id) for portal_id in portal_ids if portal_id is not None})
    epochs.move([policy_epoch_key(portal_id) for portal_id in ids], "call policy")
