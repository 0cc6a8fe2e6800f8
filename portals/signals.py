"""What portals tells the apps built on it. Their receivers are connected in their ``AppConfig.ready()``.

``portal_changed`` (``portal_ids``): the rows of these portals changed — installed, reinstalled,
uninstalled, tokens dead, disabled, or any other column — whether saved through the ORM or updated in
bulk (``Portal.objects``'s queryset sends it too). Sent inside the changing transaction: a receiver that
keeps what it read about a portal must drop it now and once more after the commit.

``portal_data_purge_requested`` (``portal_id``): the portal was uninstalled with ``data[CLEAN]=1``
(docs/bitrix24-contract.md §1.6): every receiver deletes what its app stored for that portal. Sent inside
the purge transaction; files go after the commit.
"""

from __future__ import annotations

from django.dispatch import Signal

portal_changed = Signal()
portal_data_purge_requested = Signal()
