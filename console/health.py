"""Portals worst-first: what is wrong with each, read in a handful of grouped queries (not per portal)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, Max, Q
from django.utils import timezone

from calls.models import Call, DeadLetter, ExtensionDirectory, PbxConnection
from console.conf import console_settings
from portals.models import Portal, RestCallLog

# How much each problem weighs in the order (a portal that cannot be called at all comes first).
WEIGHTS = {"tokens_dead": 1000, "pbx_silent": 300, "bucket_saturated": 200, "extension_map_stale": 150,
           "calls_failing": 20, "dead_letters": 10}
DEAD_STATUSES = (Portal.Status.TOKENS_DEAD, Portal.Status.PAYMENT_REQUIRED)
RATE_LIMIT_ERRORS = ("QUERY_LIMIT_EXCEEDED",)


@dataclass
class PortalHealth:
    portal: Portal
    tokens_dead: bool = False
    calls_failing: int = 0
    pbx_silent: list[str] = field(default_factory=list)  # names of silent connections
    dead_letters: int = 0
    rate_limited: int = 0
    extension_map_stale: bool = False
    extension_map_synced_at: datetime | None = None

    @property
    def bucket_saturated(self) -> bool:
        return self.rate_limited > 0

    @property
    def problems(self) -> list[str]:
        found = []
        if self.tokens_dead:
            found.append(f"tokens dead ({self.portal.get_status_display().lower()})")
        if self.calls_failing:
            found.append(f"{self.calls_failing} call(s) failing")
        if self.pbx_silent:
            found.append("PBX silent: " + ", ".join(self.pbx_silent))
        if self.dead_letters:
            found.append(f"{self.dead_letters} dead letter(s)")
        if self.bucket_saturated:
            found.append(f"bucket saturated ({self.rate_limited} x QUERY_LIMIT_EXCEEDED)")
        if self.extension_map_stale:
            found.append("extension map stale")
        return found

    @property
    def score(self) -> int:
        return (WEIGHTS["tokens_dead"] * self.tokens_dead + WEIGHTS["pbx_silent"] * bool(self.pbx_silent)
                + WEIGHTS["bucket_saturated"] * self.bucket_saturated
                + WEIGHTS["extension_map_stale"] * self.extension_map_stale
                + WEIGHTS["calls_failing"] * min(self.calls_failing, 25)
                + WEIGHTS["dead_letters"] * min(self.dead_letters, 25))


def _counts(rows) -> dict[int, int]:
    return {row["portal_id"]: row["n"] for row in rows}


def portal_health(portal_ids: list[int] | None = None, now: datetime | None = None) -> list[PortalHealth]:
    """Every portal (or those named) with its problems, worst first; uninstalled portals last."""
    now = now or timezone.now()
    conf = console_settings()
    since = now - conf.window
    portals = Portal.objects.order_by("domain")
    if portal_ids is not None:
        portals = portals.filter(pk__in=portal_ids)
    rows = {p.pk: PortalHealth(portal=p, tokens_dead=p.status in DEAD_STATUSES) for p in portals}
    ids = list(rows)

    failing = Call.objects.filter(portal_id__in=ids, created_at__gte=since).filter(
        Q(status=Call.Status.DEAD) | Q(failing_since__isnull=False))
    for portal_id, n in _counts(failing.values("portal_id").annotate(n=Count("id"))).items():
        rows[portal_id].calls_failing = n
    letters = DeadLetter.objects.filter(portal_id__in=ids, resolved_at=None)
    for portal_id, n in _counts(letters.values("portal_id").annotate(n=Count("id"))).items():
        rows[portal_id].dead_letters = n
    limited = RestCallLog.objects.filter(portal_id__in=ids, created_at__gte=since, error__in=RATE_LIMIT_ERRORS)
    for portal_id, n in _counts(limited.values("portal_id").annotate(n=Count("id"))).items():
        rows[portal_id].rate_limited = n

    silent_before = now - conf.pbx_silent_after
    connections = (PbxConnection.objects.filter(portal_id__in=ids, enabled=True)
                   .annotate(last_event=Max("events__received_at")).values("portal_id", "name", "last_event",
                                                                            "created_at"))
    for c in connections:
        # A connection made just now has not had the time to send anything.
        if (c["last_event"] or c["created_at"]) < silent_before:
            rows[c["portal_id"]].pbx_silent.append(c["name"])

    stale_before = now - conf.extensions_stale_after
    for d in ExtensionDirectory.objects.filter(portal_id__in=ids).values("portal_id", "synced_at", "last_error"):
        row = rows[d["portal_id"]]
        row.extension_map_synced_at = d["synced_at"]
        row.extension_map_stale = bool(d["last_error"]) or d["synced_at"] is None or d["synced_at"] < stale_before

    inactive = {Portal.Status.UNINSTALLED, Portal.Status.DISABLED}
    return sorted(rows.values(), key=lambda r: (r.portal.status in inactive, -r.score, r.portal.domain))


def health_of(portal_id: int) -> PortalHealth:
    return portal_health([portal_id])[0]

