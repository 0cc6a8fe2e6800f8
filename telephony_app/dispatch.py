"""Handing stored work to the workers: stored means accepted.

A row the request has committed (an inbox event, a call's next step) is the promise; the broker
message only says "now". So the message is sent after the commit, and a broker that is down or hung
does not turn a committed request into an error: the failure is logged and the sweepers, which look
for overdue rows, send it later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction

logger = logging.getLogger(__name__)


def send_after_commit(task: Any, *args: Any, countdown: float | None = None) -> None:
    def send(*args: Any) -> None:
        if countdown:
            task.apply_async(args, countdown=countdown)
        else:
            task.delay(*args)

    call_after_commit(task.name, send, *args)


def call_after_commit(name: str, send: Callable[..., Any], *args: Any) -> None:
    """``send(*args)`` once the transaction commits (a function that queues a message, like a pump's kick);
    a broker that is away is logged, not raised."""
    def run() -> None:
        try:
            send(*args)
        except Exception as exc:  # the broker (Redis) is away; the row waits for the sweeper
            logger.warning("could not queue %s%r (%s: %s); the sweeper will dispatch it", name, args,
                           type(exc).__name__, exc)

    transaction.on_commit(run)
