from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditEntry(models.Model):
    """Who did what in the console, and when. Written by ``console.audit.record`` only; never edited."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="console_audit")
    at = models.DateTimeField(default=timezone.now, db_index=True)
    action = models.CharField(max_length=64)
    portal = models.ForeignKey("portals.Portal", on_delete=models.SET_NULL, null=True, blank=True,
                               related_name="console_audit")
    target = models.CharField(max_length=200, blank=True, help_text="what the action was about, e.g. dead-letter:12")
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.user} {self.action} {self.target}"
