"""What the beat-driven sweeper re-dispatches: work a lost broker message, a dead worker or a restart
left undone, and calls whose ``call.ended`` never came."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.utils import timezone

from calls.followups import FollowUps
from calls.lines.services import connections_with_unsynced_lines
from calls.sync import reconciler, selectors
from calls.sync.conf import sync_settings

logger = logging.getLogger(__name__)


def sweep(now: datetime | None = None) -> tuple[FollowUps, dict[str, int]]:
    """(what to queue, counts). Stale calls are finished here; their sync is among the follow-ups."""
    now = now or timezone.now()
    conf = sync_settings()
    grace = timedelta(seconds=conf.sweep_grace_seconds)
    wait = timedelta(seconds=conf.start_wait_seconds)
    follow_ups = FollowUps()
    # Events wait in the inbox for their shard of the portal's pump: a lost kick (or a runner that died) is a kick
    # again, of that shard.
    stuck = selectors.stuck_pbx_events(now, grace)
    follow_ups.pump_shards = selectors.pump_shards_with_stuck_events(now, grace) if stuck else []
    calls = set(selectors.overdue_calls(now, grace)) | set(selectors.calls_waiting_too_long(now, wait))
    follow_ups.sync_calls = sorted(calls)
    max_age = timedelta(seconds=conf.max_call_seconds)
    stale = selectors.calls_live_too_long(now, max_age)
    for pk in stale:
        # Finish rather than leave agents' cards open forever; a late call.ended cannot change it.
        follow_ups.add(reconciler.finish_call_as_failed(pk, "OTHER", f"no call.ended from the PBX within {max_age}"))
    follow_ups.sync_lines = connections_with_unsynced_lines()
    if stuck or calls or stale:
        logger.info("sweeper kicked %d pump shards for %d events, re-dispatched %d calls; ended %d stale calls",
                    len(follow_ups.pump_shards), len(stuck), len(calls), len(stale))
    counts = {"events": len(stuck), "pumps": len(follow_ups.pump_shards), "calls": len(calls),
              "stale_calls": len(stale),
              "line_connections": len(follow_ups.sync_lines)}
    return follow_ups, counts
