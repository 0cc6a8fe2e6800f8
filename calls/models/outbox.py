"""The outbox: every Bitrix24 command a call needs, as a row, sent by one sender per portal at a time.

A call's reconciler writes ``OutboxCommand`` rows (``calls.outbox.services``) instead of calling Bitrix24;
the portal's sender (``calls.outbox.sender``, holding the ``OutboxSender`` lease) packs the due ones into
requests, one alone or up to 50 in a ``batch`` (docs/bitrix24-contract.md §2.6), and stores each command's
outcome on its row; the reconciler then takes the outcome in (``applied_at``).
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone


class OutboxCommand(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"  # attempted: the request may have reached Bitrix24
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class Kind(models.TextChoices):
        LINE = "line", "Line add"
        REGISTER = "register", "Register"
        SHOW = "show", "Card show"
        HIDE = "hide", "Card hide"
        FINISH = "finish", "Finish"
        HOUSEKEEPING = "housekeeping", "Housekeeping"

    portal = models.ForeignKey("portals.Portal", on_delete=models.CASCADE, related_name="outbox_commands")
    call = models.ForeignKey("calls.Call", on_delete=models.CASCADE, null=True, blank=True,
                             related_name="outbox_commands")
    # Stable per call and step (per portal and number for a line): a reconciler run repeated after a
    # crash finds its command instead of writing a second one.
    key = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    method = models.CharField(max_length=100)
    params = models.JSONField(default=dict, blank=True, help_text="As written; CALL_ID null: from depends_on")
    priority = models.PositiveSmallIntegerField(help_text="Lower goes first (calls.outbox.packing)")
    depends_on = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="dependents")
    due_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    sender_token = models.CharField(max_length=32, blank=True, help_text="The sender that claimed it last")
    attempted_at = models.DateTimeField(null=True, blank=True, help_text="First claimed for sending")
    attempts = models.PositiveIntegerField(default=0, help_text="Times claimed for sending")
    sent_params = models.JSONField(null=True, blank=True, help_text="Exactly what the last send carried")
    result = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True, help_text="type, code, description, status")
    completed_at = models.DateTimeField(null=True, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True, help_text="The call's reconciler took the outcome in")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["portal", "key"], name="calls_outbox_unique_key")]
        indexes = [
            # The sender's claim: a portal's pending commands that are due.
            models.Index(fields=["portal", "status", "due_at"], name="calls_outbox_claim"),
            models.Index(fields=["call", "applied_at"], name="calls_outbox_call_unapplied"),
            # The portal's pump: calls whose commands have an outcome their reconciler has not taken in.
            models.Index(fields=["portal", "call"], name="calls_outbox_outcome_unapplied",
                         condition=Q(applied_at__isnull=True, status__in=["done", "failed"])),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.key} ({self.status})"


class OutboxSender(models.Model):
    """Who sends a portal's commands now: a lease any worker takes once it has expired (no global lock)."""

    portal = models.OneToOneField("portals.Portal", on_delete=models.CASCADE, primary_key=True,
                                  related_name="outbox_sender")
    token = models.CharField(max_length=32, blank=True)
    until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"outbox sender of portal {self.portal_id}"
