"""Incoming-call routing: the decisions ``/route`` gave the PBX (a line's routing settings are in
``calls.models.settings``)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


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
