"""Uninstall with ``data[CLEAN]=1``: delete everything calls stored for the portal.

Every row that belongs to the portal — calls, the PBX inbox (client numbers), connections with their
encrypted secrets, lines and their settings, extension overrides and the portal's extension directory,
the portal's and its users' call settings,
route decisions, originate commands, dead letters, webhook-id receipts — and the recordings the PBX
uploaded, on disk. Rows go in one transaction; files after it committed, so a rolled-back purge
never leaves rows pointing at deleted files. Cached ``/route`` answers of the portal are dropped too.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from django.conf import settings
from django.db import transaction

from calls.models import (
    Call,
    DeadLetter,
    ExtensionDirectory,
    OriginateCommand,
    OutboxCommand,
    OutboxSender,
    PbxConnection,
    PbxEvent,
    PbxWebhookReceipt,
    PortalCallSettings,
    RouteDecision,
    UserCallSettings,
)
from calls.pbx_api.events import CALL_RECORDING_READY
from calls.pbx_api.intake import uploads_dir
from calls.routing.lookup import forget_portal

logger = logging.getLogger(__name__)


def purge_portal(portal_id: int) -> None:
    root = Path(settings.RECORDINGS_DIR).resolve()
    with transaction.atomic():
        connections = list(PbxConnection.objects.filter(portal_id=portal_id).values_list("pk", "public_id"))
        connection_ids = [pk for pk, _ in connections]
        files = [uploads_dir(public_id) for _, public_id in connections]
        for payload in PbxEvent.objects.filter(connection_id__in=connection_ids, type=CALL_RECORDING_READY).values_list(
            "payload", flat=True
        ):
            local = payload.get("local_path") if isinstance(payload, dict) else None
            if local:
                files.append(root / local)
        # Leaves first: each delete below is then a plain DELETE, not a cascade collected row by row.
        DeadLetter.objects.filter(portal_id=portal_id).delete()
        OriginateCommand.objects.filter(portal_id=portal_id).delete()
        OutboxCommand.objects.filter(portal_id=portal_id).delete()
        OutboxSender.objects.filter(portal_id=portal_id).delete()
        Call.objects.filter(portal_id=portal_id).delete()
        PbxWebhookReceipt.objects.filter(connection_id__in=connection_ids).delete()
        RouteDecision.objects.filter(connection_id__in=connection_ids).delete()
        PbxEvent.objects.filter(connection_id__in=connection_ids).delete()
        PbxConnection.objects.filter(pk__in=connection_ids).delete()  # secrets, lines, routing, overrides
        ExtensionDirectory.objects.filter(portal_id=portal_id).delete()
        PortalCallSettings.objects.filter(portal_id=portal_id).delete()
        UserCallSettings.objects.filter(portal_id=portal_id).delete()
        forget_portal(portal_id)
        transaction.on_commit(lambda: _remove_files(root, files))
    logger.info("portal %s: calls data purged (%d connections)", portal_id, len(connections))


def _remove_files(root: Path, paths: list[Path]) -> None:
    for path in paths:
        path = path.resolve()
        if root not in path.parents:
            continue  # only ever under RECORDINGS_DIR, whatever a payload says
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
