"""Celery tasks of the calls app: thin wrappers taking ids; the logic lives in ``calls.sync.reconciler``.

Every task is idempotent and runs with ``acks_late`` + ``reject_on_worker_lost``: a worker killed
mid-task gets the message redelivered, and the beat-driven ``sweep_overdue`` re-dispatches anything a
lost message or a broker restart left behind. Live call work goes to the ``realtime`` queue,
recordings to ``bulk``, the sweeper to ``default``.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import shared_task, signals
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from calls.lines.services import connections_with_unsynced_lines, sync_lines_to_bitrix24
from calls.sync import reconciler, selectors

logger = logging.getLogger(__name__)

# Explicit task names: they are what queued messages carry, so they outlive a move of this module.
_RELIABLE = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}


@signals.task_prerun.connect
@signals.task_postrun.connect
def _recycle_database_connections(task: Any = None, **_: Any) -> None:
    """Keep a worker's database connection across tasks, as Django keeps one across requests.

    Celery's Django fix-up would close it around every task (settings set ``CELERY_DB_REUSE_MAX`` to
    stop that): every task, a few milliseconds of work, then paid for a new PostgreSQL connection (a
    backend process forked and warmed up). Django's own rule applies instead: closed after an error,
    past ``CONN_MAX_AGE``, or when the health check fails. Connected here because every worker
    imports this module; the hook serves all tasks of the project.
    """
    if task is not None and getattr(task.request, "is_eager", False):
        return  # runs inside the caller's transaction (tests, eager mode): leave its connection alone
    close_old_connections()


@shared_task(
    name="calls.tasks.process_pbx_event", queue="realtime", soft_time_limit=120, time_limit=150, **_RELIABLE
)
def process_pbx_event(pbx_event_pk: int) -> None:
    """Apply one inbox event to its call, then sync the call right away (lowest latency)."""
    call_pk, result = reconciler.process_pbx_event(pbx_event_pk)
    if call_pk is not None and result is not None:
        _follow_up(call_pk, result, allow_slow=False)


@shared_task(name="calls.tasks.sync_call", queue="realtime", soft_time_limit=120, time_limit=150, **_RELIABLE)
def sync_call(call_pk: int) -> None:
    _sync(call_pk, allow_slow=False)


@shared_task(
    name="calls.tasks.attach_recording", queue="bulk", soft_time_limit=1800, time_limit=1900, **_RELIABLE
)
def attach_recording(call_pk: int) -> None:
    """The slow step (download, convert, upload a recording), kept off the realtime queue."""
    _sync(call_pk, allow_slow=True)


def _sync(call_pk: int, *, allow_slow: bool) -> None:
    _follow_up(call_pk, reconciler.sync_call(call_pk, allow_slow=allow_slow), allow_slow=allow_slow)


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


@shared_task(name="calls.tasks.sync_pbx_lines", queue="bulk", **_RELIABLE)
def sync_pbx_lines(connection_id: int) -> None:
    """Mirror a connection's lines into Bitrix24 external lines (``calls.lines.services``)."""

    sync_lines_to_bitrix24(connection_id)


@shared_task(name="calls.tasks.sweep_overdue", queue="default", ignore_result=True)
def sweep_overdue() -> dict[str, int]:
    """Re-dispatch what a lost broker message, a dead worker or a restart left undone."""

    now = timezone.now()
    grace = timedelta(seconds=float(getattr(settings, "CALLS_SWEEP_GRACE_SECONDS", 60)))
    wait = timedelta(seconds=float(getattr(settings, "CALLS_START_WAIT_SECONDS", 600)))
    events = selectors.stuck_pbx_events(now, grace)
    for pk in events:
        process_pbx_event.delay(pk)
    calls = set(selectors.overdue_calls(now, grace)) | set(selectors.calls_waiting_too_long(now, wait))
    for pk in sorted(calls):
        sync_call.delay(pk)
    max_age = timedelta(seconds=float(getattr(settings, "CALLS_MAX_CALL_SECONDS", 4 * 3600)))
    stale = selectors.calls_live_too_long(now, max_age)
    for pk in stale:
        # Finish rather than leave agents' cards open forever; a late call.ended cannot change it.
        reconciler.finish_call_as_failed(pk, "OTHER", f"no call.ended from the PBX within {max_age}")
    lines = connections_with_unsynced_lines()
    for connection_id in lines:
        sync_pbx_lines.delay(connection_id)
    if events or calls or stale:
        logger.info("sweeper re-dispatched %d events and %d calls; ended %d stale calls", len(events), len(calls),
                    len(stale))
    return {"events": len(events), "calls": len(calls), "stale_calls": len(stale), "line_connections": len(lines)}

