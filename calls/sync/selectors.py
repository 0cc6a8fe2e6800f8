"""Read-side queries of the call state machine: what the sweeper re-dispatches, what the admin shows."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Q, QuerySet

from calls.models import Call, DeadLetter, PbxEvent
from portals.models import RestCallLog

SWEEP_BATCH = 500
# A request logged a little before the first event we stored still belongs to the call (clock skew).
REST_LOG_LEAD = timedelta(minutes=1)
MAX_REST_ENTRIES = 500


def stuck_pbx_events(now: datetime, grace: timedelta) -> list[int]:
    """Inbox events accepted (202) but still unprocessed after ``grace``: their message was lost."""
    return list(PbxEvent.objects.filter(status=PbxEvent.Status.PENDING, received_at__lt=now - grace)
                .order_by("received_at").values_list("pk", flat=True)[:SWEEP_BATCH])


def overdue_calls(now: datetime, grace: timedelta) -> list[int]:
    """Calls with Bitrix24 work outstanding that nobody is doing: no live lease, and either the retry
    time passed ``grace`` ago or nothing touched them for ``grace``."""
    unleased = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    retry_lost = Q(next_attempt_at__lt=now - grace)
    untouched = Q(next_attempt_at__isnull=True, updated_at__lt=now - grace)
    pending = Call.objects.filter(status=Call.Status.PENDING).filter(unleased).filter(retry_lost | untouched)
    return list(pending.order_by("updated_at").values_list("pk", flat=True)[:SWEEP_BATCH])


def calls_waiting_too_long(now: datetime, wait: timedelta) -> list[int]:
    """Calls whose events never got a call.started within the allowed wait."""
    return list(Call.objects.filter(status=Call.Status.WAITING_FOR_START, first_fact_at__lt=now - wait)
                .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
                .values_list("pk", flat=True)[:SWEEP_BATCH])


def calls_live_too_long(now: datetime, max_age: timedelta) -> list[int]:
    """Calls still live long after they started: their call.ended never came (cards would stay open)."""
    return list(Call.objects.filter(status=Call.Status.LIVE, started_at__lt=now - max_age, forced_end__isnull=True)
                .values_list("pk", flat=True)[:SWEEP_BATCH])


def open_dead_letters(portal_id: int | None = None) -> QuerySet[DeadLetter]:
    qs = DeadLetter.objects.filter(resolved_at=None).select_related("portal", "call", "pbx_event")
    return qs.filter(portal_id=portal_id) if portal_id is not None else qs


def calls_of_portal(portal_id: int) -> QuerySet[Call]:
    return Call.objects.filter(portal_id=portal_id).order_by("-created_at")


def call_timeline(call: Call) -> QuerySet[PbxEvent]:
    """The call's PBX events in PBX order (the facts the state machine worked from)."""
    if call.connection_id is None or not call.pbx_call_id:
        return PbxEvent.objects.none()
    return PbxEvent.objects.filter(connection_id=call.connection_id, call_id=call.pbx_call_id).order_by(
        "occurred_at", "id")


def rest_requests_of(call: Call) -> list[RestCallLog]:
    """The REST log rows that name this call (our EXTERNAL_CALL_ID on register, Bitrix24's CALL_ID after),
    oldest first. Shown by the operator console and the in-portal Activity page."""
    names = Q(request__EXTERNAL_CALL_ID=str(call.uuid))
    if call.b24_call_id:
        names |= Q(request__CALL_ID=call.b24_call_id)
    start = (call.first_fact_at or call.created_at) - REST_LOG_LEAD
    return list(RestCallLog.objects.filter(portal_id=call.portal_id, created_at__gte=start).filter(names)
                .order_by("created_at", "id")[:MAX_REST_ENTRIES])
