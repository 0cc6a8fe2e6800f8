"""Who runs a portal's pump now (``calls.sync.pump``): a lease any worker takes once it has expired."""

from __future__ import annotations

from django.db import models


class PortalPump(models.Model):
    """One pump per portal at a time, and no global lock: one portal's backlog never holds another's."""

    portal = models.OneToOneField("portals.Portal", on_delete=models.CASCADE, primary_key=True,
                                  related_name="pump")
    token = models.CharField(max_length=32, blank=True)
    until = models.DateTimeField(null=True, blank=True)
    # A pump message is queued (or running) since then: kicks meanwhile queue none (``calls.sync.pump``).
    kicked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"pump of portal {self.portal_id}"
