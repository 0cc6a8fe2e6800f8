"""Read-side queries of the outbox: what the sender and the beat look at, and what ops and the console show."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Min, Q
from django.utils import timezone

from calls.models import OutboxCommand, OutboxSender
from calls.outbox.conf import outbox_settings

_OPEN = (OutboxCommand.Status.PENDING, OutboxCommand.Status.SENDING)


@dataclass(frozen=True)
class Depth:
    commands: int  # pending or being sent
    oldest_pending_seconds: float  # how long the oldest pending one has been waiting (0: none)
    overdue: int = 0  # pending past their due time by more than the beat's grace: nobody is sending them


def has_due(portal_id: int, now: datetime | None = None) -> bool:
    return OutboxCommand.objects.filter(portal_id=portal_id, status=OutboxCommand.Status.PENDING,
                                        due_at__lte=now or timezone.now()).exists()


def next_due(portal_id: int) -> datetime | None:
    return (OutboxCommand.objects.filter(portal_id=portal_id, status=OutboxCommand.Status.PENDING)
            .aggregate(due=Min("due_at"))["due"])


def due_count(portal_id: int, now: datetime) -> int:
    """Commands of the portal waiting to be sent now (pending and due): what a recording upload waits for."""
    return OutboxCommand.objects.filter(portal_id=portal_id, status=OutboxCommand.Status.PENDING,
                                        due_at__lte=now).count()


def call_has_open_commands(call_id: int) -> bool:
    return OutboxCommand.objects.filter(call_id=call_id, status__in=_OPEN).exists()


def unapplied(call_id: int) -> list[OutboxCommand]:
    """The call's commands whose outcome its reconciler has not taken in yet, in the order written."""
    return list(OutboxCommand.objects.filter(call_id=call_id, applied_at=None).order_by("pk"))


def depth(portal_id: int | None = None, now: datetime | None = None) -> Depth:
    """Open commands (one portal's, or all) and the age of the oldest pending one."""
    now = now or timezone.now()
    rows = OutboxCommand.objects.filter(status__in=_OPEN)
    if portal_id is not None:
        rows = rows.filter(portal_id=portal_id)
    late = now - timedelta(seconds=outbox_settings().rekick_grace_seconds)
    pending = Q(status=OutboxCommand.Status.PENDING)
    found = rows.aggregate(n=Count("pk"), oldest=Min("created_at", filter=pending),
                           overdue=Count("pk", filter=pending & Q(due_at__lt=late)))
    oldest = found["oldest"]
    return Depth(found["n"], max(0.0, (now - oldest).total_seconds()) if oldest else 0.0, found["overdue"])


def portals_to_kick(now: datetime, grace: timedelta) -> list[int]:
    """Portals whose commands nobody is sending: pending past due by ``grace`` (a lost kick), or claimed by a
    sender whose lease has run out (it died mid-request)."""
    overdue = set(OutboxCommand.objects.filter(status=OutboxCommand.Status.PENDING, due_at__lt=now - grace)
                  .values_list("portal_id", flat=True).distinct())
    live = OutboxSender.objects.filter(until__gte=now).values_list("portal_id", flat=True)
    orphaned = set(OutboxCommand.objects.filter(status=OutboxCommand.Status.SENDING).exclude(portal_id__in=live)
                   .values_list("portal_id", flat=True).distinct())
    return sorted(overdue | orphaned)
