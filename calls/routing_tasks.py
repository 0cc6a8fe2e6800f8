"""Celery task that warms the ``/route`` cache after Bitrix24 was too slow for the deadline."""

from __future__ import annotations

from celery import shared_task

from portals.models import Portal

from . import routing


# Default queue, not realtime: against a hanging Bitrix24 it waits the full REST timeout.
@shared_task(acks_late=True, queue="default")
def warm_route_cache(portal_id: int, client_number: str) -> int:
    # No retries of its own: while Bitrix24 stays slow the portal is marked slow, and the next call
    # from a client after that mark expires schedules a fresh warm-up.
    portal = Portal.objects.filter(pk=portal_id).only("default_country", "status").first()
    if portal is None or not portal.is_callable:
        return 0
    candidates = routing.warm_cache(portal_id, client_number, portal.default_country)
    return len(candidates or [])


@shared_task(queue="bulk")
def prune_route_decisions_task() -> int:
    return routing.prune_route_decisions()
