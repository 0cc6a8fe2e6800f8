"""Who runs each shard of a portal's pump now (``calls.sync.pump``): a lease any worker takes once it has expired."""

from __future__ import annotations

from django.db import models


class PortalPump(models.Model):
    """One runner per shard of a portal's pump at a time, and no global lock: one portal's backlog never holds
    another's, and a portal's shards run side by side (``calls.sync.shards``)."""

    portal = models.ForeignKey("portals.Portal", on_delete=models.CASCADE, related_name="pumps")
    # The database default lets a row be written without it (a worker of the version before the shards).
    shard = models.PositiveSmallIntegerField(default=0, db_default=0)
    token = models.CharField(max_length=32, blank=True)
    until = models.DateTimeField(null=True, blank=True)
    # A pump message is queued (or running) since then: kicks meanwhile queue none (``calls.sync.pump``).
    kicked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["portal", "shard"], name="calls_portal_pump_unique_shard")]

    def __str__(self) -> str:
        return f"pump of portal {self.portal_id}, shard {self.shard}"
