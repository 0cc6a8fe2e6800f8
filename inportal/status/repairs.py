"""One-click repairs from the status page, each over the service that owns the thing repaired."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from b24client import errors as b24errors
from calls.extensions.extension_map import sync_extensions
from calls.lines.bitrix24_sync import sync_lines_to_bitrix24
from calls.models import PbxConnection
from portals.errors import PortalUnavailable
from portals.install import setup_portal
from portals.models import Portal

logger = logging.getLogger(__name__)

REPAIRS = ("rebind_events", "resync_users", "readd_lines")


@dataclass
class RepairResult:
    ok: bool
    detail: str
    facts: dict[str, Any] = field(default_factory=dict)


def rebind_events(portal: Portal) -> RepairResult:
    try:
        report = setup_portal(portal.pk)
    except PortalUnavailable:
        return RepairResult(False, _("The connector has no access to this Bitrix24; reinstall the app."))
    except b24errors.Bitrix24Error as exc:
        return RepairResult(False, _("Bitrix24 did not answer (%(error)s); try again in a minute.") % {"error": exc.code})
    if report.failed:
        return RepairResult(False, _("Bitrix24 refused some events; try again in a minute."),
                            {"failed": sorted(report.failed)})
    return RepairResult(True, _("Events are connected again."),
                        {"bound": report.bound, "already_bound": report.already_bound})


def resync_users(portal: Portal) -> RepairResult:
    directory = sync_extensions(portal.pk)
    if directory.reading_since is not None:  # the pages wait behind the portal's calls in its outbox
        return RepairResult(True, _("Employees are being read from Bitrix24, after the calls it is busy with; "
                                    "look again in a minute."))
    if directory.last_error:
        return RepairResult(False, _("Employees could not be read: %(error)s") % {"error": directory.last_error[:300]})
    count = directory.user_count
    return RepairResult(True, ngettext("%(count)s employee read from Bitrix24.",
                                       "%(count)s employees read from Bitrix24.", count) % {"count": count},
                        {"users": directory.user_count, "extensions": len(directory.users_by_extension)})


def readd_lines(portal: Portal) -> RepairResult:
    """Each connection's lines synced again: lines Bitrix24 no longer lists (deleted by hand) are added again
    too (the sync's get finds them missing)."""
    added: list[str] = []
    errors: list[str] = []
    for connection_id in PbxConnection.objects.filter(portal=portal).values_list("pk", flat=True):
        result = sync_lines_to_bitrix24(connection_id)
        added += result.added
        if not result.complete:
            errors.append(result.error)
    if errors:
        return RepairResult(False, _("Some lines could not be added: %(error)s") % {"error": errors[0][:300]},
                            {"added": added})
    return RepairResult(True, _("Lines are registered in Bitrix24."), {"added": added})


def run_repair(portal: Portal, repair_id: str) -> RepairResult:
    return {"rebind_events": rebind_events, "resync_users": resync_users, "readd_lines": readd_lines}[repair_id](portal)
