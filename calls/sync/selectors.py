"""Read-side queries of the call state machine: what the sweeper re-dispatches, what the admin shows."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Exists, Min, OuterRef, Q, QuerySet

from b24client import phparray
from calls.models import Call, OutboxCommand, PbxEvent
from calls.sync import shards
from calls.sync import state_machine as sm
from calls.sync.conf import pump_settings
from portals.models import RestCallLog

SWEEP_BATCH = 500
# A request logged a little before the first event we stored still belongs to the call (clock skew).
REST_LOG_LEAD = timedelta(minutes=1)
MAX_REST_ENTRIES = 500


def stuck_pbx_events(now: datetime, grace: timedelta) -> list[int]:
    """Inbox events accepted (202) but still unprocessed after ``grace``: their message was lost."""
    return list(PbxEvent.objects.filter(status=PbxEvent.Status.PENDING, received_at__lt=now - grace)
                .order_by("received_at").values_list("pk", flat=True)[:SWEEP_BATCH])


def pump_shards_with_stuck_events(now: datetime, grace: timedelta) -> list[tuple[int, int]]:
    """(portal, shard) of the inbox events accepted (202) but still unprocessed after ``grace``: the kick of that
    shard of the portal's pump was lost (or its runner died): the sweeper kicks those shards, and only those."""
    count = pump_settings().shards
    rows = (PbxEvent.objects.filter(status=PbxEvent.Status.PENDING, received_at__lt=now - grace)
            .values_list("connection__portal_id", "slot").distinct())
    return sorted({(portal_id, shards.shard_of(slot, count)) for portal_id, slot in rows})


def pump_shards_of_calls(call_pks: list[int]) -> list[tuple[int, int]]:
    """(portal, shard) of the pump shards these calls belong to."""
    count = pump_settings().shards
    rows = Call.objects.filter(pk__in=call_pks).values_list("portal_id", "slot").distinct()
    return sorted({(portal_id, shards.shard_of(slot, count)) for portal_id, slot in rows})


def portal_of_event(pbx_event_pk: int) -> int | None:
    return PbxEvent.objects.filter(pk=pbx_event_pk).values_list("connection__portal_id", flat=True).first()


# --- the portal's pump (``calls.sync.pump``) -----------------------------------------------------------------

_OPEN_COMMANDS = (OutboxCommand.Status.PENDING, OutboxCommand.Status.SENDING)
_SETTLED_COMMANDS = (OutboxCommand.Status.DONE, OutboxCommand.Status.FAILED)
# Candidates looked at per call returned: some are held by another worker or wait for commands still open.
_CANDIDATES_PER_CALL = 5


def _in_slots(rows: QuerySet, slots: list[int] | None, field: str = "slot") -> QuerySet:
    """Rows of one shard of the pump (``slots``: the slots it takes; None: a pump of one shard takes all)."""
    return rows if slots is None else rows.filter(**{f"{field}__in": slots})


def pending_events(portal_id: int, limit: int, slots: list[int] | None = None) -> list[int]:
    """The portal's inbox events not applied yet (of the shard's slots), oldest first: the pump's durable queue."""
    rows = PbxEvent.objects.filter(connection__portal_id=portal_id, status=PbxEvent.Status.PENDING)
    return list(_in_slots(rows, slots).order_by("received_at", "pk").values_list("pk", flat=True)[:limit])


def calls_in_slots(call_pks: list[int], slots: list[int]) -> list[int]:
    return list(Call.objects.filter(pk__in=call_pks, slot__in=slots).values_list("pk", flat=True))


def calls_awaiting_card(call_pks: list[int]) -> list[int]:
    """Of these calls, those whose card no user has seen yet and that have not ended (an applied call.ended is
    on the row only after the call's next run, hence the look at its events): the card pop waits on their
    commands (the register, the show), so the pump sends those before the rest of its round."""
    if not call_pks:
        return []
    ended = PbxEvent.objects.filter(connection_id=OuterRef("connection_id"), call_id=OuterRef("pbx_call_id"),
                                    type=sm.ENDED)
    return list(Call.objects.filter(pk__in=call_pks, ended_at__isnull=True, finish_attempted_at__isnull=True,
                                    cards_shown=[]).exclude(status=Call.Status.DEAD).filter(~Exists(ended))
                .order_by("pk").values_list("pk", flat=True))


def calls_due(portal_id: int, now: datetime, limit: int, slots: list[int] | None = None) -> list[int]:
    """The portal's calls (of the shard's slots) the pump brings in line besides those of new events: every command of theirs has its
    outcome and some outcome is not taken in yet, or their retry (a finish waiting for late events, a backoff)
    is due. A call another worker holds is left to it; one with commands still open waits for their outcomes
    (its reconciler takes a call's outcomes in together)."""
    # Two narrow reads (the outbox's index of outcomes not taken in; calls by status and retry time) rather than
    # one OR over all the portal's calls.
    answered = _in_slots(OutboxCommand.objects.filter(portal_id=portal_id, applied_at=None,
                                                      status__in=_SETTLED_COMMANDS), slots, "call__slot")
    answered = (answered.exclude(call_id=None).exclude(call__status=Call.Status.DEAD)
                .values_list("call_id", flat=True).distinct()[:limit * _CANDIDATES_PER_CALL])
    retry_due = _in_slots(Call.objects.filter(status=Call.Status.PENDING, next_attempt_at__lte=now,
                                              portal_id=portal_id), slots)
    retry_due = retry_due.values_list("pk", flat=True)[:limit * _CANDIDATES_PER_CALL]
    candidates = set(answered) | set(retry_due)
    if not candidates:
        return []
    unleased = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    has_open = Exists(OutboxCommand.objects.filter(call_id=OuterRef("pk"), status__in=_OPEN_COMMANDS))
    due = Call.objects.filter(pk__in=candidates).exclude(status=Call.Status.DEAD).filter(unleased).filter(~has_open)
    return list(due.order_by("pk").values_list("pk", flat=True)[:limit])


def next_retry(portal_id: int, now: datetime, slots: list[int] | None = None) -> datetime | None:
    """When the portal's (the shard's) earliest call retry still to come is due (a finish waiting for late events,
    a backoff)."""
    rows = Call.objects.filter(portal_id=portal_id, status=Call.Status.PENDING, next_attempt_at__gt=now)
    return _in_slots(rows, slots).aggregate(due=Min("next_attempt_at"))["due"]


def has_pump_work(portal_id: int, now: datetime, slots: list[int] | None = None) -> bool:
    return bool(pending_events(portal_id, 1, slots) or calls_due(portal_id, now, 1, slots))


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


def call_timeline(call: Call) -> QuerySet[PbxEvent]:
    """The call's PBX events in PBX order (the facts the state machine worked from)."""
    if call.connection_id is None or not call.pbx_call_id:
        return PbxEvent.objects.none()
    return PbxEvent.objects.filter(connection_id=call.connection_id, call_id=call.pbx_call_id).order_by(
        "occurred_at", "id")


def rest_requests_of(call: Call) -> list[RestCallLog]:
    """The REST log rows that name this call (our EXTERNAL_CALL_ID on register, Bitrix24's CALL_ID after),
    oldest first. Shown by the operator console and the in-portal Activity page.

    A ``batch`` (the outbox packs a call's commands, often with other calls') stands for the commands in it
    that are this call's, each as a row of its own with its own answer (not saved)."""
    names = Q(request__EXTERNAL_CALL_ID=str(call.uuid))
    batched = Q(method="batch", request__cmd__icontains=str(call.uuid))
    if call.b24_call_id:
        names |= Q(request__CALL_ID=call.b24_call_id)
        batched |= Q(method="batch", request__cmd__icontains=call.b24_call_id)
    start = (call.first_fact_at or call.created_at) - REST_LOG_LEAD
    rows = (RestCallLog.objects.filter(portal_id=call.portal_id, created_at__gte=start).filter(names | batched)
            .order_by("created_at", "id")[:MAX_REST_ENTRIES])
    found: list[RestCallLog] = []
    for row in rows:
        found.extend(_commands_of_call(row, call) if row.method == "batch" else [row])
    return found[:MAX_REST_ENTRIES]


def _commands_of_call(row: RestCallLog, call: Call) -> list[RestCallLog]:
    request = row.request if isinstance(row.request, dict) else {}
    cmd = request.get("cmd")
    items = cmd.items() if isinstance(cmd, dict) else enumerate(cmd) if isinstance(cmd, list) else []
    answer = row.response.get("result") if isinstance(row.response, dict) else None
    answer = answer if isinstance(answer, dict) else {}
    results = answer.get("result") if isinstance(answer.get("result"), dict) else {}
    errors = answer.get("result_error") if isinstance(answer.get("result_error"), dict) else {}
    ours: set[str] = set()
    commands = []
    for key, command in items:
        method, _, query = str(command).partition("?")
        params = phparray.parse(query)
        call_id = str(params.get("CALL_ID") or "")
        refers = call_id.startswith("$result[") and call_id[len("$result["):].split("]", 1)[0] in ours
        if not (params.get("EXTERNAL_CALL_ID") == str(call.uuid) or refers
                or (call.b24_call_id and call_id == call.b24_call_id)):
            continue
        ours.add(str(key))
        error = errors.get(str(key))
        error = error if isinstance(error, dict) else None
        commands.append(RestCallLog(
            portal_id=row.portal_id, member_id=row.member_id, method=method, url=row.url, request=params,
            response=error if error is not None else {"result": results.get(str(key))}, status=row.status,
            error=str(error.get("error") or error.get("error_description") or "")[:255] if error else row.error,
            duration_ms=row.duration_ms, created_at=row.created_at))
    return commands
