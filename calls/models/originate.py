"""Originate commands: the connector asking a PBX to place a call (click-to-call, CRM callback)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class OriginateCommand(models.Model):
    """One signed ``POST {originate_url}``, its retries and its outcome.

    ``request_id`` is what the PBX echoes as ``origin_request_id`` in ``call.started``; it is also
    the Standard Webhooks ``webhook-id`` of every attempt, so a PBX that saw an earlier attempt can
    tell a retry from a new command.
    """

    class Kind(models.TextChoices):
        CLICK_TO_CALL = "click_to_call", "Click-to-call"
        CALLBACK = "callback", "Callback"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        ACCEPTED = "accepted", "Accepted by the PBX"
        STARTED = "started", "Call started on the PBX"
        REFUSED = "refused", "Refused by the PBX"
        UNREACHABLE = "unreachable", "PBX did not answer"
        EXPIRED = "expired", "Accepted, but the call never started"

    FINAL = (Status.STARTED, Status.REFUSED, Status.UNREACHABLE, Status.EXPIRED)

    request_id = models.CharField(max_length=64, unique=True)
    portal = models.ForeignKey("portals.Portal", on_delete=models.CASCADE, related_name="originate_commands")
    connection = models.ForeignKey(
        "calls.PbxConnection", on_delete=models.CASCADE, related_name="originate_commands"
    )
    call = models.OneToOneField("calls.Call", on_delete=models.CASCADE, related_name="originate_command")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    body = models.JSONField(help_text="The exact JSON body sent to the PBX")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    detail = models.CharField(max_length=500, blank=True, help_text="The PBX's answer or what went wrong")
    created_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.request_id} ({self.status})"
