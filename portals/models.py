"""Tenants (Bitrix24 portals), their encrypted OAuth tokens, the event inbox and the REST log."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from .crypto import EncryptedTextField
from .signals import portal_changed


class PortalQuerySet(models.QuerySet):
    def update(self, **kwargs: object) -> int:
        """A bulk update is a change of these portals like a save (uninstall and dead tokens are bulk
        updates): ``portal_changed`` tells the apps that keep what they read about a portal."""
        ids = list(self.values_list("pk", flat=True))
        updated = super().update(**kwargs)
        if ids:
            portal_changed.send(sender=Portal, portal_ids=ids)
        return updated


class Portal(models.Model):
    """One Bitrix24 portal that installed the app, keyed by Bitrix24's stable ``member_id``."""

    class Status(models.TextChoices):
        INSTALLING = "installing", "Installing"
        ACTIVE = "active", "Active"
        UNINSTALLED = "uninstalled", "Uninstalled"
        TOKENS_DEAD = "tokens_dead", "Tokens dead"
        PAYMENT_REQUIRED = "payment_required", "Payment required"
        DISABLED = "disabled", "Disabled by vendor"

    member_id = models.CharField(max_length=64, unique=True)
    domain = models.CharField(max_length=255, db_index=True)
    client_endpoint = models.URLField(max_length=500)
    server_endpoint = models.URLField(max_length=500, blank=True)
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.INSTALLING, db_index=True)
    dead_reason = models.CharField(max_length=255, blank=True)
    status_changed_at = models.DateTimeField(default=timezone.now)
    plan = models.CharField(max_length=64, blank=True, help_text="LICENSE_FAMILY from app.info")
    rate_capacity = models.FloatField(default=50.0)
    rate_drain = models.FloatField(default=2.0)
    application_token = EncryptedTextField(blank=True)
    scopes = models.JSONField(default=list, blank=True)
    installed_at = models.DateTimeField(null=True, blank=True)
    install_finished = models.BooleanField(default=False)
    uninstalled_at = models.DateTimeField(null=True, blank=True)
    default_country = models.CharField(max_length=2, default="RU", help_text="ISO 3166-1 alpha-2")
    lang = models.CharField(max_length=8, default="ru")
    settings = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PortalQuerySet.as_manager()

    class Meta:
        ordering = ["domain"]

    def __str__(self) -> str:
        return f"{self.domain} ({self.member_id})"

    @property
    def is_callable(self) -> bool:
        return self.status == self.Status.ACTIVE


class PortalCredential(models.Model):
    """The OAuth token chain the app uses for a portal (one row per portal, encrypted at rest)."""

    portal = models.OneToOneField(Portal, on_delete=models.CASCADE, related_name="credential")
    access_token = EncryptedTextField()
    refresh_token = EncryptedTextField()
    expires_at = models.DateTimeField(null=True, blank=True)
    user_id = models.IntegerField(null=True, blank=True, help_text="Bitrix24 user whose tokens these are")
    refreshed_count = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"credential for portal {self.portal_id}"


class Bitrix24Event(models.Model):
    """Inbox of events Bitrix24 POSTed to us. Stored before the 200; Bitrix24 never retries."""

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSING = "processing", "Processing"
        DONE = "done", "Done"
        UNHANDLED = "unhandled", "Unhandled"
        FAILED = "failed", "Failed"
        # Not acted on: the event failed a check only Bitrix24 could answer (a forged uninstall).
        REFUSED = "refused", "Refused"

    portal = models.ForeignKey(Portal, on_delete=models.CASCADE, related_name="events")
    event = models.CharField(max_length=100, db_index=True)
    payload = models.JSONField(default=dict, help_text="Parsed body with auth tokens removed")
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    # For the sweeper: a lost broker message or a killed worker must not lose the event.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    processing_started_at = models.DateTimeField(null=True, blank=True)
    # Telephony events: sha256 of event, event_handler_id, ts and data (portals.event_checks); a second copy
    # is a replay, Bitrix24 never sends an event twice. NULL (not "") for other events: unique only when set.
    replay_key = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["portal", "replay_key"], name="portals_event_once_per_replay_key"),
        ]
        indexes = [
            models.Index(fields=["portal", "event", "received_at"]),
            models.Index(fields=["status", "next_attempt_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.event} #{self.pk}"


class RestCallLog(models.Model):
    """Every REST request/response to Bitrix24, secrets redacted; pruned after BITRIX24_REST_LOG_DAYS."""

    portal = models.ForeignKey(Portal, on_delete=models.CASCADE, related_name="rest_calls", null=True)
    member_id = models.CharField(max_length=64, blank=True)
    method = models.CharField(max_length=200)
    url = models.TextField(blank=True)
    request = models.JSONField(default=dict, blank=True)
    response = models.JSONField(null=True, blank=True)
    status = models.IntegerField(null=True, blank=True, help_text="HTTP status, null when no response")
    error = models.CharField(max_length=255, blank=True)
    duration_ms = models.IntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["portal", "created_at"])]

    def __str__(self) -> str:
        return f"{self.method} {self.status}"
