"""The portal's pump: loops per portal (one per shard) that take the portal's PBX events in, bring their calls in
line with Bitrix24 and send the portal's outbox, many calls at a time.

Without it every accepted event was a message of its own (apply, reconcile, drain inline) and every call whose
commands got answered another, all portals in one queue: a portal with a burst queued thousands of messages
ahead of a quiet portal's one, and each paid a task's overhead to do one call's work. A pump run does rounds of:

1. the shard's pending inbox events, oldest first (at most ``round_events``), applied (``reconciler.claim_event``);
2. the calls they touched that still wait for their card brought in line first (``reconcile(drain=False)``) and
   the outbox drained at once, so that a card is not held up by the rest of the round;
3. each other call they touched brought in line once, and each call whose outbox commands all have their outcome or
   whose retry is due (``selectors.calls_due``), writing the calls' commands without sending them
   (``reconcile(drain=False)``);
4. the portal's outbox drained (a batch carries the round's commands), never sleeping for the bucket;
5. the outcomes taken in by the shard's calls concerned, whose next commands go with the next round;

until nothing is left or the slice (``slice_seconds`` / ``slice_events``) is spent; the task then queues the pump
again, at the back of the queue, so other portals' pumps go in between. A quiet portal's event is applied,
written and sent in the one run its kick queued.

Shards: a portal's pump runs as ``shards`` runners side by side (``PumpSettings.shards``), runner ``s`` over the
calls whose slot (``calls.sync.shards``, fixed per call when its first event is stored) is ``s`` modulo the count.
Each has its own lease and kick mark, so a burst on one portal spreads over that many worker processes while the
others stay free for other portals. A call and all its events belong to one shard: one runner applies a call's
events in order, and two runners never contend for one call's lease. The reads of a round (pending events, calls
due, the next retry) are each shard's own; the intake, the sweeper and the outbox's listeners kick only the
shards concerned. The outbox stays one sender per portal: whichever runner holds the sender sends every shard's
commands (a runner that finds it busy goes on; the holder looks again after it lets go, and a drain it leaves
undone is queued as the drain task, so nothing a shard wrote is stranded). A runner takes in at once the outcomes
of its own calls; those of another shard's calls are that shard's (its kick, from the outbox's ``drained``
signal), so no runner waits on another's call lease.

One runner per shard at a time: a lease (``PortalPump``, a row per portal and shard) taken with a compare-and-set
UPDATE, any worker taking over one that expired; no global lock. The per-call lease, the outbox's attempted
marks and its sender lease stay as they were, so exactly once is the reconciler's and the sender's, unchanged.

Nothing is lost with a kick: the pending inbox events, the outcomes not taken in and the calls' retry times are
the durable queue, a kick only says "now". A kick leaves a mark (``mark_kick``) so that one pump message at most
waits per shard; the runner drops it as it lets go, *before* its last look for work, so a kick it absorbed is
covered by that look and a later one queues a message. A runner that dies: its message is delivered again and
comes back once the lease has run out; the sweeper kicks the shards whose events wait past its grace.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from calls import leases
from calls.models import Call, PortalPump
from calls.outbox import sender as outbox_sender
from calls.sync import reconciler, selectors, shards
from calls.sync.conf import PumpSettings, pump_settings

logger = logging.getLogger(__name__)

# A run's outcomes that leave the call as it is until something new happens to it (a fact, an outcome, its
# retry time): a call the run has seen end so is not brought in line again in the same run.
_SETTLED_OUTCOMES = frozenset({"idle", "dead", "slow_step", "busy", "retry"})
_TIMER_SLACK_S = 0.25  # how much later than wanted a queued message may come and still stand in for ours
_TIMER_MARGIN_S = 1.0


@dataclass
class PumpReport:
    busy_for: float | None = None  # another runner holds the portal: seconds left on its lease
    rounds: int = 0
    events: int = 0
    runs: int = 0  # calls brought in line
    requests: int = 0
    commands: int = 0
    again: bool = False  # work is left: the pump is queued again, at the back of the queue
    retry_at: datetime | None = None  # the portal's earliest call retry still to come: the pump comes back then
    # Results the task follows up call by call, as before the pump: a call another worker holds, a recording.
    follow_ups: list[tuple[int, reconciler.SyncResult]] = field(default_factory=list)
    settled: set[int] = field(default_factory=set)  # calls left as they are until something new happens


# --- the lease -----------------------------------------------------------------------------------------------


def take_lease(portal_id: int, conf: PumpSettings, shard: int = 0) -> str | None:
    return leases.take(PortalPump, portal_id, conf.lease_seconds, shard=shard)


def renew_lease(portal_id: int, token: str, conf: PumpSettings, shard: int = 0) -> bool:
    return leases.renew(PortalPump, portal_id, token, conf.lease_seconds, shard=shard)


def release_lease(portal_id: int, token: str, shard: int = 0) -> None:
    """Let go of the shard, and drop the kick's mark with it: from now on a kick queues a message."""
    leases.release(PortalPump, portal_id, token, key={"shard": shard}, kicked_at=None)


def _lease_left(portal_id: int, shard: int) -> float:
    until = PortalPump.objects.filter(portal_id=portal_id, shard=shard).values_list("until", flat=True).first()
    return max(0.0, (until - timezone.now()).total_seconds()) if until else 0.0


# --- kicks ---------------------------------------------------------------------------------------------------


def mark_kick(portal_id: int, shard: int = 0) -> bool:
    """True when the caller should queue the shard's runner: no message of it waits (or runs) already."""
    return bool(mark_kicks(portal_id, [shard]))


def mark_kicks(portal_id: int, wanted: list[int]) -> list[int]:
    """Of these shards of the portal's pump, those the caller should queue a runner for: no message of theirs
    waits (or runs) already.

    The mark is a column of the lease row, written in the caller's transaction: a kick whose transaction rolls
    back leaves none, and one left by a message that was lost ends after ``kick_ttl_seconds``. One statement
    whatever the number of shards (an intake POST kicks every shard its events fall in): an upsert that creates
    a shard's row marked, or marks an existing one unless it is marked already, and returns the shards it
    marked (PostgreSQL, and SQLite since 3.35). Every events POST kicks: the ORM's UPDATE, then EXISTS (then
    INSERT), compiled anew each time, were a third of that POST's CPU."""
    wanted = sorted(set(wanted))  # a row named twice in one upsert is an error on PostgreSQL
    if not wanted:
        return []
    now = timezone.now()
    stale = now - timedelta(seconds=pump_settings().kick_ttl_seconds)
    prep = PortalPump._meta.get_field("kicked_at").get_db_prep_save
    params: list[object] = []
    for shard in wanted:
        params += [portal_id, shard, prep(now, connection)]
    with connection.cursor() as cursor:
        cursor.execute(_mark_sql(connection.vendor, len(wanted)), [*params, prep(stale, connection)])
        return sorted(row[0] for row in cursor.fetchall())


@functools.cache
def _mark_sql(vendor: str, rows: int) -> str:
    q = connection.ops.quote_name
    table = q(PortalPump._meta.db_table)
    portal, shard, token, kicked = (q(PortalPump._meta.get_field(name).column)
                                    for name in ("portal", "shard", "token", "kicked_at"))
    values = ", ".join(["(%s, %s, '', %s)"] * rows)
    # Only quoted table and column names of the model go into the text; every value is a parameter.
    return (f"INSERT INTO {table} ({portal}, {shard}, {token}, {kicked}) VALUES {values} "  # noqa: S608
            f"ON CONFLICT ({portal}, {shard}) DO UPDATE SET {kicked} = excluded.{kicked} "
            f"WHERE {table}.{kicked} IS NULL OR {table}.{kicked} < %s RETURNING {shard}")


def drop_kick(portal_id: int, shard: int = 0) -> None:
    PortalPump.objects.filter(portal_id=portal_id, shard=shard).update(kicked_at=None)


def timer_delay(portal_id: int, due: datetime, shard: int = 0) -> float | None:
    """Seconds until the pump should come back for a call's retry, or None when a message already queued for
    no later than that stands in for it (recorded in the cache; a lost record costs one redundant message)."""
    due_ts = due.timestamp()
    now = time.time()
    key = f"calls:pump-timer:{portal_id}:{shard}"
    try:
        queued = cache.get(key)
        # Only a message due a while from now is trusted to come: one due about now may be this very run.
        if isinstance(queued, (int, float)) and now + _TIMER_MARGIN_S < queued <= due_ts + _TIMER_SLACK_S:
            return None
        cache.set(key, max(due_ts, now), timeout=int(max(0.0, due_ts - now)) + 5)
    except Exception:
        logger.warning("pump timer cache unavailable", exc_info=True)
    return max(0.0, due_ts - now)


# --- running -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Part:
    """The share of a portal's work one runner does: its shard, and the slots that shard takes (None: every slot,
    a portal pumped by one runner, whose reads then name no slot at all)."""

    portal_id: int
    shard: int
    slots: list[int] | None


def _part(portal_id: int, shard: int, conf: PumpSettings) -> _Part:
    return _Part(portal_id, shard, shards.slots_of(shard, conf.shards) if conf.shards > 1 else None)


def run(portal_id: int, shard: int = 0) -> PumpReport:
    """Rounds of the shard's work until none is left or the slice is spent (nothing when another runner has
    the shard: ``busy_for``)."""
    conf = pump_settings()
    part = _part(portal_id, shard, conf)
    report = PumpReport()
    token = take_lease(portal_id, conf, shard)
    if token is None:
        report.busy_for = _lease_left(portal_id, shard)
        return report
    started = time.monotonic()
    try:
        while _round(part, report, conf):
            if report.events >= conf.slice_events or time.monotonic() - started >= conf.slice_seconds:
                report.again = True  # the others' turn: queued again, behind them
                break
            if not renew_lease(portal_id, token, conf, shard):
                break  # taken over: our lease had run out
    finally:
        release_lease(portal_id, token, shard)  # and the kick's mark
    # After the mark is gone: what was written before a kick this run absorbed is seen here.
    report.again = report.again or _has_work(part, report)
    # Every run sets the timer for the shard's earliest retry, from the calls' rows: a message queued for an
    # earlier one stands in for a later one only because its run sets the timer again.
    report.retry_at = selectors.next_retry(portal_id, timezone.now(), part.slots)
    if report.events or report.runs:
        logger.info("pump of portal %s shard %s: %d events, %d calls, %d requests (%d commands) in %d rounds",
                    portal_id, shard, report.events, report.runs, report.requests, report.commands, report.rounds)
    return report


def _has_work(part: _Part, report: PumpReport) -> bool:
    now = timezone.now()
    if selectors.pending_events(part.portal_id, 1, part.slots):
        return True
    limit = len(report.settled) + 1
    return bool(set(selectors.calls_due(part.portal_id, now, limit, part.slots)) - report.settled)


def _round(part: _Part, report: PumpReport, conf: PumpSettings) -> bool:
    """One round; False when it found nothing to do."""
    report.rounds += 1
    events = selectors.pending_events(part.portal_id, conf.round_events, part.slots)
    claimed: dict[int, str | None] = {}  # the calls the events touched, with our lease on them if we got it
    try:
        for pk in events:
            call_pk, token = reconciler.claim_event(pk)
            if call_pk is not None and claimed.get(call_pk) is None:
                claimed[call_pk] = token
        report.events += len(events)
        # Card first: the calls still waiting for their card are brought in line and their commands sent before
        # the round's other work (finishes, hides, retries, outcomes), which would otherwise delay every card.
        first = selectors.calls_awaiting_card(list(claimed))
        retries = [_bring_in_line(pk, claimed.pop(pk), report) for pk in first]
        settled = _drain(part, report, conf) if first else set()
        due = [pk for pk in selectors.calls_due(part.portal_id, timezone.now(),
                                                 conf.round_events + len(report.settled), part.slots)
               if pk not in claimed and pk not in report.settled][:conf.round_events]
        retries += [_bring_in_line(pk, claimed.pop(pk, None), report) for pk in [*list(claimed), *due]]
    finally:
        _let_go(claimed)  # calls claimed and not brought in line (a failure on the way): free at once
    requests = report.requests
    settled -= set(due)  # the first drain's outcomes these took in just now
    settled |= _drain(part, report, conf)
    # The outcomes are taken in while the calls are at hand; what that writes goes with the next round.
    retries += [_bring_in_line(pk, None, report) for pk in sorted(settled)]
    _plan_retries([r for r in retries if r is not None], report)
    return bool(events or due or report.requests > requests)


def _drain(part: _Part, report: PumpReport, conf: PumpSettings) -> set[int]:
    """The portal's outbox drained once, never sleeping for the bucket; this shard's calls whose commands got
    outcomes (another shard's are left to it: the outbox's ``drained`` signal kicks it)."""
    drained = outbox_sender.drain(part.portal_id, max_requests=conf.drain_requests, bucket_wait=0.0)
    report.requests += drained.requests
    report.commands += drained.commands
    settled = set(drained.settled_calls)
    if part.slots is None or not settled:
        return settled
    return set(selectors.calls_in_slots(sorted(settled), part.slots))


def _bring_in_line(call_pk: int, token: str | None,
                   report: PumpReport) -> tuple[int, reconciler.SyncResult] | None:
    """Reconcile one call without sending; returns the call and its result when it asked to come back later."""
    result = reconciler.reconcile(call_pk, claimed=token, drain=False)
    report.runs += 1
    if result.outcome in _SETTLED_OUTCOMES:
        report.settled.add(call_pk)
    if result.outcome in ("busy", "slow_step"):
        report.follow_ups.append((call_pk, result))
    return (call_pk, result) if result.outcome == "retry" else None


def _plan_retries(retries: list[tuple[int, reconciler.SyncResult]], report: PumpReport) -> None:
    """A retry the call's row holds (pending, with its time) is the pump's to come back for (``next_retry``);
    any other (facts that kept arriving, a run's step budget) is followed up call by call, as before the pump."""
    if not retries:
        return
    timed = set(Call.objects.filter(pk__in=[pk for pk, _ in retries], status=Call.Status.PENDING,
                                    next_attempt_at__isnull=False).values_list("pk", flat=True))
    report.follow_ups += [(pk, result) for pk, result in retries if pk not in timed]


def _let_go(claimed: dict[int, str | None]) -> None:
    for call_pk, token in claimed.items():
        if token is not None:
            Call.objects.filter(pk=call_pk, lease_token=token).update(lease_token="", lease_until=None)
