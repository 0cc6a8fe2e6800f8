"""Creating PBX connections, rotating their signing secrets, and the keys used to verify and
sign requests (services: writes, plus the two key lookups every request needs)."""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from calls.connections.auth_epoch import forget_auth_material
from calls.models import ConnectionSecret, PbxConnection
from calls.originate.targets import validate_originate_url
from calls.pbx_api import signing
from portals.models import Portal

DEFAULT_ROTATION_OVERLAP = timedelta(hours=24)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IssuedSecret:
    connection: PbxConnection
    secret: str  # whsec_…; shown once to the PBX admin, never stored in the clear


def _new_secret(connection: PbxConnection, now: datetime) -> str:
    key = signing.generate_secret()
    ConnectionSecret.objects.create(
        connection=connection, key=base64.b64encode(key).decode("ascii"), created_at=now
    )
    return signing.encode_secret(key)


def create_connection(
    *,
    portal: Portal,
    name: str,
    originate_url: str = "",
    is_default: bool | None = None,
    recording_hosts: list[str] | None = None,
) -> IssuedSecret:
    """A new enabled connection with its first secret. The portal's first connection is its default."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "a connection needs a name"})
    validate_originate_url(originate_url)
    now = timezone.now()
    with transaction.atomic():
        # Lock the portal row: two concurrent creations must not both become the default.
        Portal.objects.select_for_update().filter(pk=portal.pk).first()
        if is_default is None:
            is_default = not PbxConnection.objects.filter(portal=portal).exists()
        if is_default:
            PbxConnection.objects.filter(portal=portal, is_default=True).update(is_default=False)
        connection = PbxConnection.objects.create(
            portal=portal,
            name=name,
            originate_url=originate_url,
            is_default=is_default,
            recording_hosts=[h.strip().lower() for h in recording_hosts or [] if h.strip()],
        )
        secret = _new_secret(connection, now)
    return IssuedSecret(connection, secret)


def rotate_secret(connection: PbxConnection, *, overlap: timedelta = DEFAULT_ROTATION_OVERLAP) -> IssuedSecret:
    """Issue a new secret; the current ones stay valid for ``overlap`` (0 revokes them at once)."""
    if overlap < timedelta(0):
        raise ValidationError({"overlap": "must not be negative"})
    now = timezone.now()
    until = now + overlap
    with transaction.atomic():
        PbxConnection.objects.select_for_update().filter(pk=connection.pk).first()
        ConnectionSecret.objects.filter(connection=connection).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=until)
        ).update(expires_at=until)
        secret = _new_secret(connection, now)
    forget_auth_material([connection.public_id])
    return IssuedSecret(connection, secret)


def active_secrets(connection_id: int, *, at: datetime | None = None) -> list[ConnectionSecret]:
    at = at or timezone.now()
    return list(
        ConnectionSecret.objects.filter(connection_id=connection_id)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=at))
        .order_by("-created_at", "-id")
    )


def verification_keys(connection_id: int, *, at: datetime | None = None) -> list[bytes]:
    """Every unexpired key, newest first: any of them authenticates an inbound request."""
    return [s.key_bytes() for s in active_secrets(connection_id, at=at)]


def outbound_signature_headers(
    connection_id: int, body: bytes, *, webhook_id: str | None = None, timestamp: int | None = None
) -> dict[str, str]:
    """Standard Webhooks headers for a request to the PBX (originate).

    Signed with every unexpired key, newest first, so a PBX that still holds the previous
    secret during a rotation overlap keeps accepting our commands.
    """
    keys = verification_keys(connection_id)
    if not keys:
        raise ValueError(f"connection {connection_id} has no active signing secret")
    return signing.sign_headers(keys, body, webhook_id=webhook_id, timestamp=timestamp)


def purge_expired_secrets(*, older_than: timedelta = timedelta(days=7)) -> int:
    """Delete keys expired for a while (kept a week for the audit trail); returns the count."""
    deleted, _ = ConnectionSecret.objects.filter(expires_at__lt=timezone.now() - older_than).delete()
    return deleted
