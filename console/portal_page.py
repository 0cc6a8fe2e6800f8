"""Everything about one portal on one page: connections, lines, extension map, tokens and scopes, the
settings that differ from the defaults, outbox and rate-limit bucket, recent calls."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Max

from calls.models import Call, ExtensionDirectory, PbxConnection, PbxLine
from calls.outbox.selectors import depth as outbox_depth
from calls.settings.selectors import non_default_settings
from console.health import PortalHealth, health_of
from portals.models import Portal, PortalCredential

RECENT_CALLS = 50
PORTAL_FIELD_DEFAULTS = ("default_country", "lang")


@dataclass
class PortalPage:
    portal: Portal
    health: PortalHealth
    connections: list[dict[str, Any]] = field(default_factory=list)
    lines: list[PbxLine] = field(default_factory=list)
    directory: ExtensionDirectory | None = None
    credential: PortalCredential | None = None
    differing_settings: list[tuple[str, Any, Any]] = field(default_factory=list)  # (name, value, default)
    outbox_depth: int = 0
    outbox_oldest_seconds: int = 0
    outbox_overdue: int = 0
    recent_calls: list[Call] = field(default_factory=list)


def differing_settings(portal: Portal) -> list[tuple[str, Any, Any]]:
    out = []
    for name in PORTAL_FIELD_DEFAULTS:
        default = Portal._meta.get_field(name).default
        if getattr(portal, name) != default:
            out.append((name, getattr(portal, name), default))
    # The call settings the portal admin changed in the app (``calls.settings``).
    return out + non_default_settings(portal.pk)


def portal_page(portal_id: int) -> PortalPage:
    portal = Portal.objects.get(pk=portal_id)
    page = PortalPage(portal=portal, health=health_of(portal_id))
    for c in (PbxConnection.objects.filter(portal=portal).annotate(last_event=Max("events__received_at"))
              .order_by("-is_default", "name")):
        page.connections.append({"connection": c, "last_event": c.last_event,
                                 "silent": c.name in page.health.pbx_silent})
    page.lines = list(PbxLine.objects.filter(connection__portal=portal).select_related("connection")
                      .order_by("connection__name", "number"))
    page.directory = ExtensionDirectory.objects.filter(portal=portal).first()
    page.credential = PortalCredential.objects.filter(portal=portal).only(
        "expires_at", "user_id", "refreshed_count", "updated_at", "portal_id").first()
    page.differing_settings = differing_settings(portal)
    depth = outbox_depth(portal.pk)
    page.outbox_depth = depth.commands
    page.outbox_oldest_seconds = round(depth.oldest_pending_seconds)
    page.outbox_overdue = depth.overdue
    page.recent_calls = list(Call.objects.filter(portal=portal).select_related("connection", "portal")
                             .order_by("-created_at")[:RECENT_CALLS])
    return page
