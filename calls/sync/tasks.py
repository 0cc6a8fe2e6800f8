"""Celery tasks of the call state machine: thin wrappers taking ids; the logic lives in ``calls.sync.pump``,
``calls.sync.reconciler`` and ``calls.sync.sweeper``.

Every task is idempotent and runs with ``acks_late`` + ``reject_on_worker_lost``: a worker killed
mid-task gets the message redelivered, and the beat-driven ``sweep_overdue`` re-dispatches anything a
lost message or a broker restart left behind. Live call work goes to the ``realtime`` queue,
recordings to ``bulk``, the sweeper to ``default``.
"""

from __future__ import annotations

import logging

from celery import shared_task

from calls.lines.tasks import sync_pbx_lines
from calls.sync import pump, reconciler, selectors, sweeper

logger = logging.getLogger(__name__)

# Explicit task names: they are what queued messages carry, so they outlive a move of this module.
_RELIABLE = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}


@shared_task(
    name="calls.tasks.process_pbx_event", queue="realtime", soft_time_limit=120, time_limit=150, **_RELIABLE
)
def process_pbx_event(pbx_event_pk: int) -> None:
    """Apply one inbox event to its call, then sync the call right away: an event replayed by hand (the admin,
    a dead letter), and messages queued before the portal's pump took new events over."""
    call_pk, result = reconciler.apply_and_reconcile(pbx_event_pk)
    if call_pk is not None and result is not None:
        _follow_up(call_pk, result, allow_slow=False)


@shared_task(name="calls.tasks.run_pump", queue="realtime", soft_time_limit=120, time_limit=150, **_RELIABLE)
def run_pump(portal_id: int, shard: int | None = None) -> None:
    """A slice of one shard of the portal's work (``calls.sync.pump``), then its follow-ups: the shard again at the
    back of the queue while work is left, at the earliest retry a call asked for, and what is followed up call by
    call. A message without a shard (queued before the pump had shards) stands for shard 0, whose mark it holds,
    and kicks the others."""
    count = pump.pump_settings().shards
    if shard is None:
        kick_pumps(portal_id, list(range(1, count)))
        shard = 0
    elif shard >= count:  # queued before the count went down: its slots are another shard's now
        kick_pump(portal_id, shard % count)
        return
    report = pump.run(portal_id, shard)
    if report.busy_for is not None:
        # Another runner has the shard and looks again before it stops; should it have died, this comes
        # back once its lease has run out.
        run_pump.apply_async((portal_id, shard), countdown=report.busy_for + 0.5)
        return
    for call_pk, result in report.follow_ups:
        _follow_up(call_pk, result, allow_slow=False)
    if report.retry_at is not None:
        delay = pump.timer_delay(portal_id, report.retry_at, shard)
        if delay is not None:
            run_pump.apply_async((portal_id, shard), countdown=delay)
    if report.again:
        kick_pump(portal_id, shard)


def kick_pump(portal_id: int, shard: int = 0) -> None:
    """Queue the shard of the portal's pump, unless a message of it waits (or runs) already."""
    kick_pumps(portal_id, [shard])


def kick_pumps_of_calls(call_pks: list[int]) -> None:
    """Queue the pump shards these calls belong to (their outcomes are theirs to take in)."""
    shards: dict[int, list[int]] = {}
    for portal_id, shard in selectors.pump_shards_of_calls(call_pks):
        shards.setdefault(portal_id, []).append(shard)
    for portal_id, wanted in shards.items():
        kick_pumps(portal_id, wanted)


def kick_pumps(portal_id: int, shards: list[int]) -> None:
    """Queue these shards of the portal's pump, each unless a message of it waits (or runs) already."""
    marked = pump.mark_kicks(portal_id, shards)
    for n, shard in enumerate(marked):
        try:
            run_pump.delay(portal_id, shard)
        except Exception:
            for unsent in marked[n:]:
                pump.drop_kick(portal_id, unsent)  # nothing was queued for these: their next kick must queue
            raise


@shared_task(name="calls.tasks.sync_call", queue="realtime", soft_time_limit=120, time_limit=150, **_RELIABLE)
def sync_call(call_pk: int) -> None:
    _sync(call_pk, allow_slow=False)


@shared_task(
    name="calls.tasks.attach_recording", queue="bulk", soft_time_limit=1800, time_limit=1900, **_RELIABLE
)
def attach_recording(call_pk: int) -> None:
    """The slow step, kept off the realtime queue: a reconcile run allowed to deliver the call's recording
    (``calls.recordings.services.deliver_recording``: download, convert, upload) under the call's lease,
    with the marks that make it happen once written around it."""
    _sync(call_pk, allow_slow=True)


def _sync(call_pk: int, *, allow_slow: bool) -> None:
    _follow_up(call_pk, reconciler.reconcile(call_pk, allow_slow=allow_slow), allow_slow=allow_slow)


def _follow_up(call_pk: int, result: reconciler.SyncResult, *, allow_slow: bool) -> None:
    """Queue what the sync asked for: the same kind of run later, or the slow step on the bulk queue."""
    again = attach_recording if allow_slow else sync_call
    if result.outcome in ("retry", "busy"):
        if result.queued:
            return  # a message already queued for this call comes by then and does it
        again.apply_async((call_pk,), countdown=max(0.0, result.delay))
        reconciler.note_follow_up_queued(result)
    elif result.outcome == "slow_step":
        attach_recording.delay(call_pk)


@shared_task(name="calls.tasks.sweep_overdue", queue="default", ignore_result=True)
def sweep_overdue() -> dict[str, int]:
    """Re-dispatch what a lost broker message, a dead worker or a restart left undone."""
    follow_ups, counts = sweeper.sweep()
    for portal_id, shards in follow_ups.pump_shards_by_portal().items():
        kick_pumps(portal_id, shards)
    for pk in follow_ups.sync_calls:
        sync_call.delay(pk)
    for connection_id in follow_ups.sync_lines:
        sync_pbx_lines.delay(connection_id)
    return counts
