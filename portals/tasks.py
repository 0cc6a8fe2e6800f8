"""Celery tasks for portals: thin wrappers that take ids and call services."""

from __future__ import annotations

import logging

from celery import shared_task

from b24client import errors

from .errors import PortalUnavailable
from .events import process_event, record_failure
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
        record_failure(event_id, f"{type(exc).__name__}: {exc}", final=final)
        if final:
            logger.exception("Bitrix24 event %s failed for good", event_id)
            return "failed"
        delay = getattr(exc, "retry_after", None) or min(300, 2 ** (self.request.retries + 1))
        raise self.retry(exc=exc, countdown=delay) from exc


@shared_task(queue="bulk")
def prune_rest_call_log_task() -> int:
    deleted = prune_rest_call_log()
    logger.info("pruned %s REST log entries", deleted)
    return deleted
