"""Problems grouped per portal and cause, with how often and when first and last seen: what a vendor
works through in the morning."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Max, Min, Q
from django.utils import timezone

from calls.models import Call
from console.conf import console_settings
from console.health import DEAD_STATUSES, portal_health
from portals.models import Portal, RestCallLog

SCOPE_ERRORS = ("insufficient_scope", "INSUFFICIENT_SCOPE", "invalid_scope", "ACCESS_DENIED", "access_denied")

CAUSES = {
    "token_dead": "Tokens dead",
    "scope_missing": "Scope missing",
    "lead_creation_error": "LEAD_CREATION_ERROR",
    "unmapped_extension": "Unmapped extension",
    "pbx_silent": "PBX silent",
    "recording_failing": "Recording download failing",
}


@dataclass
class Issue:
    portal: Portal
    cause: str
    count: int
    first_seen: datetime | None
    last_seen: datetime | None
    example: str = ""

    @property
    def label(self) -> str:
        return CAUSES[self.cause]


def _grouped(qs, cause: str, at: str, portals: dict[int, Portal], example: str = "") -> list[Issue]:
    rows = qs.values("portal_id").annotate(n=Count("id"), first=Min(at), last=Max(at))
    return [Issue(portals[r["portal_id"]], cause, r["n"], r["first"], r["last"], example)
            for r in rows if r["portal_id"] in portals]


def issues(now: datetime | None = None, portal_id: int | None = None) -> list[Issue]:
    now = now or timezone.now()
    since = now - console_settings().window * 7
    portal_qs = Portal.objects.all() if portal_id is None else Portal.objects.filter(pk=portal_id)
    portals = {p.pk: p for p in portal_qs}
    found: list[Issue] = []
    for p in portals.values():
        if p.status in DEAD_STATUSES:
            found.append(Issue(p, "token_dead", 1, p.status_changed_at, p.status_changed_at, p.dead_reason))
    rest = RestCallLog.objects.filter(portal_id__in=portals, created_at__gte=since)
    found += _grouped(rest.filter(error__in=SCOPE_ERRORS), "scope_missing", "created_at", portals)
    calls = Call.objects.filter(portal_id__in=portals, created_at__gte=since)
    found += _grouped(calls.filter(register_result__has_key="LEAD_CREATION_ERROR"), "lead_creation_error",
                      "created_at", portals)
    found += _grouped(calls.exclude(Q(unmapped_extensions=[]) | Q(unmapped_extensions__isnull=True)),
                      "unmapped_extension", "created_at", portals)
    found += _grouped(calls.exclude(recording_error=""), "recording_failing", "updated_at", portals)
    for row in portal_health(list(portals), now=now):
        if row.pbx_silent:
            found.append(Issue(row.portal, "pbx_silent", len(row.pbx_silent), None, now, ", ".join(row.pbx_silent)))
    return sorted(found, key=lambda i: (i.portal.domain, list(CAUSES).index(i.cause)))
