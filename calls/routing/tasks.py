"""Celery task that warms the ``/route`` cache after Bitrix24 was too slow for the deadline."""

from __future__ import annotations

import logging

from celery import shared_task

from calls.routing import lookup
from portals.models import Portal

logger = logging.getLogger(__name__)

# Explicit task names: they are what queued messages carry, so they outlive a move of this module.


# Default queue, not realtime: against a hanging Bitrix24 it waits the full REST timeout.
@shared_task(name="calls.routing_tasks.warm_route_cache", acks_late=True, queue="default")
def warm_route_cache(portal_id: int, client_number: str) -> int:
    # No retries of its own: while Bitrix24 stays slow the portal is marked slow, and the next call
    # from a client after that mark expires schedules a fresh warm-up.
    portal = Portal.objects.filter(pk=portal_id).only("default_country", "status").first()
    if portal is None or not portal.is_callable:
        return 0
    candidates = lookup.warm_cache(portal_id, client_number, portal.default_country)
    return len(candidates or [])


def request_warm_up(portal_id: int, client_number: str) -> None:
    """Queue a warm-up unless one for this portal is on its way (``lookup.claim_warm_up``)."""
    if not lookup.claim_warm_up(portal_id):
        return
    try:
        warm_route_cache.delay(portal_id, client_number)
    except Exception:
        lookup.release_warm_up(portal_id)
        logger.warning("could not queue the route cache warm-up for portal %s", portal_id, exc_info=True)


@shared_task(name="calls.routing_tasks.prune_route_decisions_task", queue="bulk")
def prune_route_decisions_task() -> int:
    return lookup.prune_route_decisions()
