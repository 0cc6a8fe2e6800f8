"""Celery tasks for portals: thin wrappers that take ids and call services."""

from __future__ import annotations

import logging

from celery import shared_task

from b24client import errors

from .errors import PortalUnavailable
from .events import EVENT_STUCK_AFTER, overdue_event_ids, process_event, record_failure
from .services import prune_rest_call_log

logger = logging.getLogger(__name__)

MAX_EVENT_ATTEMPTS = 5


@shared_task(bind=True, acks_late=True, max_retries=MAX_EVENT_ATTEMPTS - 1, queue="default")
def process_bitrix24_event(self, event_id: int) -> str:
    try:
        return process_event(event_id)
    except PortalUnavailable as exc:
        # Nothing will change until the portal's admin acts; retrying would only spin.
        record_failure(event_id, str(exc), final=True)
        return "failed"
    except Exception as exc:
        retryable = isinstance(exc, errors.Bitrix24Error) and exc.retryable
        final = not retryable or self.request.retries >= self.max_retries
        delay = getattr(exc, "retry_after", None) or min(300, 2 ** (self.request.retries + 1))
        record_failure(event_id, f"{type(exc).__name__}: {exc}", final=final, retry_in=delay)
        if final:
            logger.exception("Bitrix24 event %s failed for good", event_id)
            return "failed"
        raise self.retry(exc=exc, countdown=delay) from exc


@shared_task(queue="bulk")
def prune_rest_call_log_task() -> int:
    deleted = prune_rest_call_log()
    logger.info("pruned %s REST log entries", deleted)
    return deleted


# Seconds an event may wait for its task before the sweeper re-dispatches it.
EVENT_SWEEP_GRACE = 60.0


@shared_task(queue="default")
def sweep_bitrix24_events() -> int:
    ids = overdue_event_ids(grace=EVENT_SWEEP_GRACE, stuck_after=EVENT_STUCK_AFTER, max_attempts=MAX_EVENT_ATTEMPTS)
    for event_id in ids:
        process_bitrix24_event.delay(event_id)
    if ids:
        logger.warning("re-dispatched %s Bitrix24 event(s) whose task was lost", len(ids))
    return len(ids)
