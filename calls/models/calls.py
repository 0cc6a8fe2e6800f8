"""Calls as the connector tracks them: the persisted state machine row per PBX call, the per-portal
extension directory, and the dead-letter list.

The facts of a call are its ``PbxEvent`` rows (same connection and ``call_id``, status processed); the
``Call`` row holds what Bitrix24 already has (the achieved state) and the bookkeeping that makes
delivery exactly-once: marks written *before* each non-idempotent Bitrix24 call, a lease so only
one worker syncs a call at a time, and the retry schedule the sweeper checks.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone


class Call(models.Model):
    class Origin(models.TextChoices):
        PBX = "pbx", "Placed on the PBX"
        CLICK_TO_CALL = "click_to_call", "Click-to-call"
        CALLBACK = "callback", "CRM-form callback"

    class Status(models.TextChoices):
        NEW = "new", "Waiting for the PBX to place the call"
        WAITING_FOR_START = "waiting_for_start", "Waiting for call.started"
        PENDING = "pending", "Bitrix24 steps outstanding"
        LIVE = "live", "In progress, Bitrix24 up to date"
        DONE = "done", "Finished in Bitrix24"
        IGNORED = "ignored", "Not for Bitrix24 (between extensions, or kept out by the settings)"
        DEAD = "dead", "Dead letter"

    # Our id of the physical call, sent as EXTERNAL_CALL_ID: a retried register returns the same
    # CALL_ID, and two calls from one number within 30 minutes are never merged by Bitrix24.
    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    portal = models.ForeignKey("portals.Portal", on_delete=models.CASCADE, related_name="calls")
    connection = models.ForeignKey(
        "calls.PbxConnection", on_delete=models.CASCADE, null=True, blank=True, related_name="calls"
    )
    # NULL, not "", until known: the unique constraints below must not treat "unknown" as a value.
    pbx_call_id = models.CharField(max_length=128, null=True, blank=True, help_text="The PBX's call_id")  # noqa: DJ001

    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.PBX)
    origin_request_id = models.CharField(
        max_length=64, null=True, blank=True, unique=True,
        help_text="Originate request id the PBX echoes as origin_request_id in call.started",
    )
    origin_user_id = models.PositiveIntegerField(
        null=True, blank=True, help_text="Bitrix24 user who clicked to call / takes the callback"
    )

    direction = models.CharField(max_length=8, blank=True, help_text="inbound | outbound, from call.started")
    client_number = models.CharField(max_length=64, blank=True, help_text="Normalised outside party")
    line_number = models.CharField(max_length=64, blank=True, help_text="Normalised line (DID)")
    crm_entity_type = models.CharField(max_length=16, blank=True)
    crm_entity_id = models.PositiveBigIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    answered_by = models.CharField(max_length=64, blank=True, help_text="Extension that took the call last")
    forced_end = models.JSONField(
        null=True, blank=True, help_text="{status_code, reason, at}: ended by us (originate refused)"
    )

    # What Bitrix24 has (achieved state).
    b24_call_id = models.CharField(max_length=100, null=True, blank=True, help_text="Bitrix24 CALL_ID")  # noqa: DJ001
    b24_user_id = models.PositiveIntegerField(null=True, blank=True, help_text="USER_ID the call was registered with")
    register_attempted_at = models.DateTimeField(null=True, blank=True)
    registered_at = models.DateTimeField(null=True, blank=True)
    # Stored with the "attempted" mark and re-sent unchanged on a retry: Bitrix24 only returns the same
    # CALL_ID for the same USER_ID/PHONE_NUMBER/TYPE/LINE_NUMBER/EXTERNAL_CALL_ID.
    register_params = models.JSONField(null=True, blank=True)
    register_result = models.JSONField(null=True, blank=True)
    line_registered = models.BooleanField(default=False)
    cards_shown = models.JSONField(default=list, blank=True, help_text="Users we showed the card to and not hid")
    finish_attempted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    finish_params = models.JSONField(null=True, blank=True)
    recording_key = models.CharField(max_length=200, blank=True, help_text="event_id of the attached recording")
    recording_attached_at = models.DateTimeField(null=True, blank=True)
    recording_error = models.TextField(blank=True)
    unmapped_extensions = models.JSONField(default=list, blank=True)
    # Why the portal's settings keep this call out of Bitrix24 (a line switched off, ...); "" if they do not.
    skip_reason = models.CharField(max_length=200, blank=True)

    # Delivery bookkeeping.
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEW, db_index=True)
    facts_version = models.PositiveIntegerField(default=0, help_text="Bumped by every applied event")
    synced_version = models.PositiveIntegerField(default=0, help_text="facts_version the last full sync saw")
    first_fact_at = models.DateTimeField(null=True, blank=True, help_text="When we received the first event")
    attempts = models.PositiveIntegerField(default=0, help_text="Failed attempts of the current step")
    failing_since = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    lease_token = models.CharField(max_length=32, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    # Its events' slot (``calls.sync.shards``): which shard of the portal's pump brings it in line.
    slot = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "pbx_call_id"], condition=Q(pbx_call_id__isnull=False),
                name="calls_call_unique_pbx_call",
            ),
            models.UniqueConstraint(
                fields=["portal", "b24_call_id"], condition=Q(b24_call_id__isnull=False),
                name="calls_call_unique_b24_call",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(fields=["portal", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"call {self.pbx_call_id or self.origin_request_id or self.pk} ({self.status})"


class ExtensionDirectory(models.Model):
    """The portal's UF_PHONE_INNER -> user map as last read from ``user.get`` (all pages).

    Kept when a later sync fails: a failed sync must never hide every agent.
    """

    portal = models.OneToOneField("portals.Portal", on_delete=models.CASCADE, related_name="extension_directory")
    users_by_extension = models.JSONField(default=dict, blank=True)
    # Every user ``user.get`` returned: [{"id", "name", "photo", "active", "extension"}] (the app's employee list).
    users = models.JSONField(default=list, blank=True)
    # Extensions several active users share: resolved to the lowest user id, shown to the admin.
    conflicts = models.JSONField(default=dict, blank=True)
    user_count = models.PositiveIntegerField(default=0)
    synced_at = models.DateTimeField(null=True, blank=True, help_text="Last successful sync")
    attempted_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # A read of ``user.get`` pages in the portal's outbox whose answers are not all taken in yet: one per portal.
    reading_since = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"extensions of portal {self.portal_id}"


class DeadLetter(models.Model):
    """Work that failed for good: visible to the vendor in the admin, replayable."""

    class Kind(models.TextChoices):
        CALL = "call", "Call sync"
        PBX_EVENT = "pbx_event", "PBX event"

    portal = models.ForeignKey("portals.Portal", on_delete=models.CASCADE, related_name="dead_letters")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    call = models.ForeignKey(Call, on_delete=models.CASCADE, null=True, blank=True, related_name="dead_letters")
    pbx_event = models.ForeignKey(
        "calls.PbxEvent", on_delete=models.CASCADE, null=True, blank=True, related_name="dead_letters"
    )
    reason = models.CharField(max_length=255)
    detail = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    resolved_at = models.DateTimeField(null=True, blank=True, help_text="Replayed or dismissed")
    replay_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["portal", "resolved_at"])]

    def __str__(self) -> str:
        return f"{self.kind}: {self.reason}"
