"""The PBX inbox: events stored before the 202, and the webhook-id receipts of the 24-hour
replay rule."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from .connections import PbxConnection


class PbxEvent(models.Model):
    """One PBX event, stored durably before the PBX gets its 202; processed afterwards by the call
    state machine. ``payload`` is the event object as validated (unknown extra fields kept)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSED = "processed", "Processed"
        FAILED = "failed", "Failed"

    connection = models.ForeignKey(PbxConnection, on_delete=models.CASCADE, related_name="events")
    # PBX ids are at most 128 characters; the extra room is for ids the connector makes
    # itself (uploaded recordings become synthetic events).
    event_id = models.CharField(max_length=200)
    webhook_id = models.CharField(max_length=128, blank=True)
    type = models.CharField(max_length=40)
    call_id = models.CharField(max_length=128)
    occurred_at = models.DateTimeField()
    payload = models.JSONField()
    received_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    processed_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    # The call's slot (``calls.sync.shards``): which shard of the portal's pump applies it. Set by the intake.
    slot = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["received_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "event_id"], name="calls_pbx_event_unique_per_connection")
        ]
        indexes = [
            models.Index(fields=["status", "received_at"]),
            models.Index(fields=["connection", "call_id", "occurred_at"]),
            # A pump shard's pending events, oldest first (``calls.sync.selectors.pending_events``).
            models.Index(fields=["connection", "slot", "received_at"], condition=Q(status="pending"),
                         name="calls_pbx_event_pending_slot"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.call_id} ({self.event_id})"


class PbxWebhookReceipt(models.Model):
    """The answer given to an authenticated request, by ``webhook-id``: a retry within 24 hours gets
    the same status and body back and is not processed again."""

    connection = models.ForeignKey(PbxConnection, on_delete=models.CASCADE, related_name="webhook_receipts")
    webhook_id = models.CharField(max_length=128)
    status_code = models.PositiveSmallIntegerField()
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "webhook_id"], name="calls_webhook_receipt_unique")
        ]

    def __str__(self) -> str:
        return f"{self.webhook_id} -> {self.status_code}"
