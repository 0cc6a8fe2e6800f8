"""PBX connections (one PBX account linked to one portal), their signing secrets, lines and
per-connection extension overrides."""

from __future__ import annotations

import base64
import secrets

from django.db import models
from django.db.models import Q
from django.utils import timezone

from calls.connections.auth_epoch import forget_auth_material
from portals.crypto import EncryptedTextField


def new_public_id() -> str:
    # 16 random bytes, URL-safe Base64: unguessable, safe in a path segment, says nothing about the tenant.
    return secrets.token_urlsafe(16)


# Columns no PBX request is answered from: writing them moves no authentication epoch.
BOOKKEEPING_FIELDS = frozenset({"first_signed_request_at", "last_signed_request_at", "updated_at"})


class PbxConnectionQuerySet(models.QuerySet):
    def update(self, **kwargs: object) -> int:
        """A bulk update (``enabled=False`` from a script, the admin's default switch) applies to the next
        PBX request in every process, like a save."""
        if kwargs.keys() <= BOOKKEEPING_FIELDS:
            return super().update(**kwargs)
        public_ids = list(self.values_list("public_id", flat=True))
        updated = super().update(**kwargs)
        forget_auth_material(public_ids)
        return updated


class PbxConnection(models.Model):
    class RecordingAuth(models.TextChoices):
        NONE = "none", "None"
        BASIC = "basic", "HTTP Basic"
        BEARER = "bearer", "Bearer token"

    portal = models.ForeignKey("portals.Portal", on_delete=models.CASCADE, related_name="pbx_connections")
    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    name = models.CharField(max_length=200)
    enabled = models.BooleanField(default=True)
    is_default = models.BooleanField(
        default=False, help_text="Used for click-to-call when a user's extension does not pick a connection"
    )
    originate_url = models.URLField(max_length=500, blank=True)
    recording_auth = models.CharField(max_length=8, choices=RecordingAuth.choices, default=RecordingAuth.NONE)
    recording_username = models.CharField(max_length=200, blank=True)
    # Basic-auth password or bearer token, depending on recording_auth.
    recording_secret = EncryptedTextField(blank=True)
    recording_hosts = models.JSONField(
        default=list,
        blank=True,
        help_text="Extra host names recordings may be downloaded from (the originate URL's host is always allowed)",
    )
    # When the PBX's signature last verified (kept to the minute: written at most once a minute).
    first_signed_request_at = models.DateTimeField(null=True, blank=True)
    last_signed_request_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PbxConnectionQuerySet.as_manager()

    class Meta:
        ordering = ["portal_id", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["portal"], condition=Q(is_default=True), name="calls_one_default_connection_per_portal"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.public_id})"

    def allowed_recording_hosts(self) -> set[str]:
        """Hosts a ``call.recording_ready`` URL may point at (empty: none; upload the file instead). Only
        the list itself: the originate URL's host is not implied, since whoever may set that URL would
        otherwise also choose where we download from (migration 0009 listed it for existing connections)."""
        return {h.strip().lower().rstrip(".") for h in self.recording_hosts if h and h.strip()}

    def recording_auth_headers(self) -> dict[str, str]:
        """Headers the recording downloader sends to the PBX (never logged)."""
        if self.recording_auth == self.RecordingAuth.BASIC and self.recording_username:
            raw = f"{self.recording_username}:{self.recording_secret}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}
        if self.recording_auth == self.RecordingAuth.BEARER and self.recording_secret:
            return {"Authorization": f"Bearer {self.recording_secret}"}
        return {}


class ConnectionSecret(models.Model):
    """A signing key of a connection. Several coexist during a rotation: every unexpired one
    verifies inbound requests, and outbound requests carry one signature per unexpired key."""

    connection = models.ForeignKey(PbxConnection, on_delete=models.CASCADE, related_name="secrets")
    # Base64 of the key bytes, encrypted at rest.
    key = EncryptedTextField()
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Set when a newer secret replaced this one")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["connection", "expires_at"])]

    def __str__(self) -> str:
        return f"secret #{self.pk} of connection {self.connection_id}"

    def key_bytes(self) -> bytes:
        return base64.b64decode(self.key)

    def is_active(self, at=None) -> bool:
        at = at or timezone.now()
        return self.expires_at is None or self.expires_at > at


class PbxLine(models.Model):
    """An external number of the PBX, registered in Bitrix24 as an external line."""

    connection = models.ForeignKey(PbxConnection, on_delete=models.CASCADE, related_name="lines")
    number = models.CharField(max_length=32, help_text="E.164, e.g. +74951234567")
    name = models.CharField(max_length=255, blank=True)
    bitrix_line_registered = models.BooleanField(default=False)
    # Set when the PBX stopped listing the number; the row lives until Bitrix24 confirmed the delete.
    removed_at = models.DateTimeField(null=True, blank=True)
    sync_error = models.CharField(max_length=500, blank=True)
    # Added by the portal admin (a number the PBX used but never declared): kept by ``PUT /lines``.
    added_by_admin = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["connection_id", "number"]
        constraints = [models.UniqueConstraint(fields=["connection", "number"], name="calls_line_unique_number")]

    def __str__(self) -> str:
        return self.number


class SeenLineNumber(models.Model):
    """A number a PBX gave as a call's line without ever declaring it (``PUT …/lines``).

    Such a number is not a company line: it is never added to Bitrix24 and never sent as
    ``LINE_NUMBER`` (Bitrix24 would add it to the app's lines). It is kept here, one row per connection
    and number, so that an admin can see it and make it a line on purpose.
    """

    connection = models.ForeignKey(PbxConnection, on_delete=models.CASCADE, related_name="seen_line_numbers")
    number = models.CharField(max_length=64, help_text="normalised as the call's numbers are")
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    last_call = models.ForeignKey("calls.Call", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["connection_id", "-last_seen_at"]
        constraints = [models.UniqueConstraint(fields=["connection", "number"], name="calls_seen_line_unique_number")]

    def __str__(self) -> str:
        return self.number


class ExtensionOverride(models.Model):
    """Maps a PBX extension to a Bitrix24 user for one connection, over ``UF_PHONE_INNER``."""

    connection = models.ForeignKey(PbxConnection, on_delete=models.CASCADE, related_name="extension_overrides")
    extension = models.CharField(max_length=64)
    user_id = models.PositiveIntegerField(help_text="Bitrix24 user id")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["connection_id", "extension"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "extension"], name="calls_extension_override_unique")
        ]

    def __str__(self) -> str:
        return f"{self.extension} -> user {self.user_id}"
