"""Incoming-call routing: per-line routing settings and the decisions ``/route`` gave the PBX."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class LineRouting(models.Model):
    """Routing and callback settings of one external line (kept apart from ``PbxLine``, which mirrors
    what the PBX reports and is rewritten by every ``PUT /lines``)."""

    line = models.OneToOneField("calls.PbxLine", on_delete=models.CASCADE, related_name="routing")
    route_to_responsible = models.BooleanField(
        default=True, help_text="Ask Bitrix24 CRM for the client's responsible manager on incoming calls"
    )
    default_extension = models.CharField(
        max_length=64, blank=True, help_text="Where the call goes when no responsible manager can take it"
    )
    default_user_id = models.PositiveIntegerField(
        null=True, blank=True, help_text="Bitrix24 user of the fallback (else the owner of default_extension)"
    )
    callback_user_id = models.PositiveIntegerField(
        null=True, blank=True, help_text="Bitrix24 user who takes CRM-form callbacks on this line"
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"routing of line {self.line_id}"


class RouteDecision(models.Model):
    """What ``/route`` answered for an incoming call. The call state machine reads the latest one for
    the same connection, client and line when it registers the call, so the call card opens for the
    manager the call was routed to."""

    class Reason(models.TextChoices):
        CRM_RESPONSIBLE = "crm_responsible", "CRM responsible"
        LINE_DEFAULT = "line_default", "Line default"
        NONE = "none", "None"

    connection = models.ForeignKey("calls.PbxConnection", on_delete=models.CASCADE, related_name="route_decisions")
    client_number = models.CharField(max_length=32, help_text="E.164")
    line_number = models.CharField(max_length=32, blank=True)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    user_id = models.PositiveIntegerField(null=True, blank=True)
    extension = models.CharField(max_length=64, blank=True)
    crm_entity_type = models.CharField(max_length=16, blank=True)
    crm_entity_id = models.PositiveBigIntegerField(null=True, blank=True)
    source = models.CharField(max_length=16, help_text="cache | bitrix24 | timeout | error | disabled")
    decided_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-decided_at", "-id"]
        indexes = [models.Index(fields=["connection", "client_number", "decided_at"])]

    def __str__(self) -> str:
        return f"{self.client_number} -> {self.extension or '-'} ({self.reason})"
