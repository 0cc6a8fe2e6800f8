"""What calls does when something it depends on changes: the receivers ``CallsConfig.ready()`` connects.

Thin: each one finds the ids concerned and calls the service that acts (services never connect
themselves on import).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from calls.auth_epoch import forget_auth_material
from calls.dispatch import queue
from calls.extensions.tasks import sync_extensions
from calls.followups import FollowUps
from calls.models import ConnectionSecret, ExtensionOverride, LineSettings, PbxConnection, PbxLine
from calls.models.connections import BOOKKEEPING_FIELDS
from calls.outbox import services as outbox_services
from calls.outbox.tasks import drain_outbox
from calls.policy_epoch import forget_portal_facts
from calls.purge import purge_portal
from calls.routing.lookup import forget_portal
from telephony_app.dispatch import send_after_commit


def connection_changed(sender: type, instance: PbxConnection, **kwargs: Any) -> None:
    """Saved or deleted through the ORM (the admin, services): the next PBX request in every process sees it."""
    update_fields = kwargs.get("update_fields")
    if update_fields is not None and set(update_fields) <= BOOKKEEPING_FIELDS:
        return
    forget_auth_material([instance.public_id])


def secret_changed(sender: type, instance: ConnectionSecret, **kwargs: Any) -> None:
    forget_auth_material(PbxConnection.objects.filter(pk=instance.connection_id).values_list("public_id", flat=True))


def portals_changed(sender: type, portal_ids: list[int], **kwargs: Any) -> None:
    """Installed, uninstalled, tokens dead, disabled: the next PBX request of these portals, in every
    process, is answered from the new rows (409 once a portal is not callable)."""
    forget_auth_material(PbxConnection.objects.filter(portal_id__in=portal_ids).values_list("public_id", flat=True))
    forget_portal_facts(portal_ids)


def policy_row_changed(sender: type, instance: Any, **kwargs: Any) -> None:
    """A row the calls' syncs keep in memory (``calls.sync.portal_state``) was saved or deleted: every process
    reads its portal's again for its next call."""
    portal_id = getattr(instance, "portal_id", None)
    if portal_id is None and isinstance(instance, LineSettings):
        portal_id = PbxLine.objects.filter(pk=instance.line_id).values_list("connection__portal_id", flat=True).first()
    elif portal_id is None and getattr(instance, "connection_id", None) is not None:
        portal_id = PbxConnection.objects.filter(pk=instance.connection_id).values_list("portal_id", flat=True).first()
    forget_portal_facts([portal_id])


def portal_purge_requested(sender: type, portal_id: int, **kwargs: Any) -> None:
    purge_portal(portal_id)


def line_changed(sender: type, instance: PbxLine, **kwargs: Any) -> None:
    """A line appeared, was renamed or deleted: cached answers of its portal may name its fallback."""
    portal_id = PbxConnection.objects.filter(pk=instance.connection_id).values_list("portal_id", flat=True).first()
    if portal_id is not None:
        forget_portal(portal_id)


def line_routing_changed(sender: type, instance: LineSettings, **kwargs: Any) -> None:
    """A line's fallback or CRM routing switch changed: cached answers of its portal are stale."""
    portal_id = PbxLine.objects.filter(pk=instance.line_id).values_list("connection__portal_id", flat=True).first()
    if portal_id is not None:
        forget_portal(portal_id)


def extension_override_changed(sender: type, instance: ExtensionOverride, **kwargs: Any) -> None:
    """A user's extension on a connection changed: cached routing answers of the portal may be stale."""
    portal_id = PbxConnection.objects.filter(pk=instance.connection_id).values_list("portal_id", flat=True).first()
    if portal_id is not None:
        forget_portal(portal_id)


def outbox_drained(sender: type, portal_id: int, call_ids: list[int], next_due: datetime | None,
                   **kwargs: Any) -> None:
    """A sender let go: the calls whose commands got an outcome read them (their shard of the portal's pump brings
    them in line, ``calls.sync.pump``), and the portal's pending commands get a drain when the earliest is due."""
    if call_ids:
        queue(FollowUps(pump_calls=list(call_ids)))
    if next_due is not None:
        delay = outbox_services.kick_delay(portal_id, next_due)
        if delay is not None:
            send_after_commit(drain_outbox, portal_id, countdown=delay)


def users_being_read(sender: type, portal_id: int, look_again_in: float, **kwargs: Any) -> None:
    """A read of the portal's users has pages waiting in its outbox: the sync task takes them in later."""
    send_after_commit(sync_extensions, portal_id, countdown=look_again_in)
