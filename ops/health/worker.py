"""A Celery worker bootstep that touches the node's heartbeat file from the worker's own timer.

The timer runs in the worker's event loop, so a worker whose loop hangs (or whose broker connection
is gone and the consumer is restarting) stops refreshing the file and its healthcheck fails. The file
is removed on a clean shutdown, so a stopped worker reads as not ready at once.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps

logger = logging.getLogger(__name__)


class HeartbeatStep(bootsteps.StartStopStep):
    requires = {"celery.worker.components:Timer"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.tref = None

    def start(self, parent: Any) -> None:
        from ops.conf import ops_settings
        from ops.health.heartbeat import touch_worker_heartbeat

        node = parent.hostname

        def beat() -> None:
            try:
                touch_worker_heartbeat(node)
            except OSError:
                logger.exception("could not write the worker heartbeat")

        beat()
        self.tref = parent.timer.call_repeatedly(ops_settings().worker_heartbeat_seconds, beat)

    def stop(self, parent: Any) -> None:
        from ops.health.heartbeat import remove_worker_heartbeat

        if self.tref is not None:
            self.tref.cancel()
            self.tref = None
        remove_worker_heartbeat(parent.hostname)

    shutdown = stop
