"""What the beat-driven sweeper re-dispatches: work a lost broker message, a dead worker or a restart
left undone, and calls whose ``call.ended`` never came."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from calls.followups import FollowUps
from calls.lines.services import connections_with_unsynced_lines
from calls.sync import reconciler, selectors

logger = logging.getLogger(__name__)


def sweep(now: datetime | None = None) -> tuple[FollowUps, dict[str, int]]:
    """(what to queue, counts). Stale calls are finished here; their sync is among the follow-ups."""
    now = now or timezone.now()
    grace = timedelta(seconds=float(settings.CALLS_SWEEP_GRACE_SECONDS))
    wait = timedelta(seconds=float(settings.CALLS_START_WAIT_SECONDS))
    follow_ups = FollowUps()
    follow_ups.process_events = list(selectors.stuck_pbx_events(now, grace))
    calls = set(selectors.overdue_calls(now, grace)) | set(selectors.calls_waiting_too_long(now, wait))
    follow_ups.sync_calls = sorted(calls)
    max_age = timedelta(seconds=float(settings.CALLS_MAX_CALL_SECONDS))
    stale = selectors.calls_live_too_long(now, max_age)
    for pk in stale:
        # Finish rather than leave agents' cards open forever; a late call.ended cannot change it.
        follow_ups.add(reconciler.finish_call_as_failed(pk, "OTHER", f"no call.ended from the PBX within {max_age}"))
    follow_ups.sync_lines = connections_with_unsynced_lines()
    if follow_ups.process_events or calls or stale:
        logger.info("sweeper re-dispatched %d events and %d calls; ended %d stale calls",
                    len(follow_ups.process_events), len(calls), len(stale))
    counts = {"events": len(follow_ups.process_events), "calls": len(calls), "stale_calls": len(stale),
              "line_connections": len(follow_ups.sync_lines)}
    return follow_ups, counts
