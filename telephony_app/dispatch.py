"""Handing stored work to the workers: stored means accepted.

A row the request has committed (an inbox event, a call's next step) is the promise; the broker
message only says "now". So the message is sent after the commit, and a broker that is down or hung
does not turn a committed request into an error: the failure is logged and the sweepers, which look
for overdue rows, send it later.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

logger = logging.getLogger(__name__)


def send_after_commit(task: Any, *args: Any, countdown: float | None = None) -> None:
    def send() -> None:
        try:
            if countdown:
                task.apply_async(args, countdown=countdown)
            else:
                task.delay(*args)
        except Exception as exc:  # the broker (Redis) is away; the row waits for the sweeper
            logger.warning("could not queue %s%r (%s: %s); the sweeper will dispatch it", task.name, args,
                           type(exc).__name__, exc)

    transaction.on_commit(send)
