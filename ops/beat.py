"""Celery beat's scheduler with a heartbeat: beat has no port to probe, so every tick writes the time
to the shared cache (at most every ``HEALTH_BEAT_HEARTBEAT_SECONDS``); readiness reports it stale."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.beat import PersistentScheduler

logger = logging.getLogger(__name__)


class HeartbeatScheduler(PersistentScheduler):
    _last_heartbeat = 0.0

    def tick(self, *args: Any, **kwargs: Any) -> float:
        from ops.conf import ops_settings
        from ops.health.heartbeat import write_beat_heartbeat

        interval = ops_settings().beat_heartbeat_seconds
        now = time.time()
        if now - self._last_heartbeat >= interval:
            try:
                write_beat_heartbeat(now)
                self._last_heartbeat = now
            except Exception:
                logger.exception("could not write the beat heartbeat")
        # Wake up at least once per heartbeat interval, however far the next job is.
        return min(super().tick(*args, **kwargs), interval)
