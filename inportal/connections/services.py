"""PBX connections as the portal admin manages them, over calls' connection services."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from calls.connections.services import IssuedSecret, create_connection, rotate_secret, verification_keys
from calls.models import PbxConnection
from calls.originate import transport as originate_http
from portals.models import Portal

from ..models import ConnectionTest

# A test must answer while the admin watches: shorter than a real originate's budget.
TEST_BUDGET_SECONDS = 8.0
TEST_ATTEMPT_TIMEOUT = 4.0


def connection_of(portal: Portal, public_id: str) -> PbxConnection:
    """The portal's connection, or DoesNotExist (another portal's id is as unknown as a made-up one)."""
    return PbxConnection.objects.get(portal=portal, public_id=public_id)


def pbx_api_base(connection: PbxConnection) -> str:
    events = reverse("pbx-events", kwargs={"connection_id": connection.public_id})
    return settings.APP_BASE_URL.rstrip("/") + events.rsplit("/", 1)[0] + "/"


def events_url(connection: PbxConnection) -> str:
    return settings.APP_BASE_URL.rstrip("/") + reverse("pbx-events", kwargs={"connection_id": connection.public_id})


def _apply_recording(connection: PbxConnection, recording: dict[str, Any]) -> None:
    if "auth" in recording:
        connection.recording_auth = recording["auth"]
        if recording["auth"] == PbxConnection.RecordingAuth.NONE:
            connection.recording_username = ""
            connection.recording_secret = ""
    if "username" in recording:
        connection.recording_username = recording["username"]
    if "secret" in recording:
        connection.recording_secret = recording["secret"]
    if "hosts" in recording:
        connection.recording_hosts = recording["hosts"]


def create(portal: Portal, data: dict[str, Any]) -> IssuedSecret:
    """A new connection with its first secret (shown once) and whatever else the admin filled in."""
    with transaction.atomic():
        issued = create_connection(
            portal=portal,
            name=data["name"],
            originate_url=data.get("originate_url", ""),
            is_default=True if data.get("is_default") else None,  # None: the portal's first one is the default
            recording_hosts=(data.get("recording") or {}).get("hosts"),
        )
        connection = issued.connection
        recording = data.get("recording") or {}
        if recording:
            _apply_recording(connection, recording)
            connection.save()
    return issued


def update(connection: PbxConnection, data: dict[str, Any]) -> PbxConnection:
    with transaction.atomic():
        connection = PbxConnection.objects.select_for_update().get(pk=connection.pk)
        for name in ("name", "enabled", "originate_url"):
            if name in data:
                setattr(connection, name, data[name])
        if data.get("is_default"):
            PbxConnection.objects.filter(portal_id=connection.portal_id, is_default=True).exclude(
                pk=connection.pk).update(is_default=False)
            connection.is_default = True
        if "recording" in data:
            _apply_recording(connection, data["recording"])
        connection.save()
    return connection


def rotate(connection: PbxConnection, overlap_hours: int) -> IssuedSecret:
    return rotate_secret(connection, overlap=timedelta(hours=overlap_hours))


@dataclass(frozen=True)
class TestOutcome:
    ok: bool
    outcome: str  # accepted | refused | unreachable | no_originate_url
    http_status: int | None
    detail: str
    attempts: int


def send_test_command(connection: PbxConnection, *, user_id: int | None) -> TestOutcome:
    """A signed ``{"kind": "test"}`` command to the originate URL (docs/pbx-api.md): proves the PBX can be
    reached, checks our signature and places no call. The answer is kept for the status and the wizard."""
    if not connection.originate_url:
        outcome = TestOutcome(False, "no_originate_url", None, "", 0)
    else:
        request_id = str(uuid.uuid4())
        sent = originate_http.post_originate(
            connection.originate_url,
            verification_keys(connection.pk),
            {"request_id": request_id, "kind": "test"},
            request_id=request_id,
            budget_seconds=TEST_BUDGET_SECONDS,
            attempt_timeout=TEST_ATTEMPT_TIMEOUT,
        )
        outcome = TestOutcome(sent.status == originate_http.ACCEPTED, sent.status, sent.http_status, sent.detail,
                              sent.attempts)
    ConnectionTest.objects.update_or_create(
        connection=connection,
        defaults={"tested_at": timezone.now(), "ok": outcome.ok, "outcome": outcome.outcome,
                  "http_status": outcome.http_status, "detail": outcome.detail[:300], "tested_by": user_id},
    )
    return outcome
