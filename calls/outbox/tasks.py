"""Celery tasks of the outbox: thin wrappers taking ids; the logic lives in ``calls.outbox.sender`` and
``calls.outbox.services``. Idempotent, ``acks_late`` + ``reject_on_worker_lost`` like the call sync."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from calls.outbox import selectors, sender, services
from calls.outbox.conf import outbox_settings

_RELIABLE = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}


@shared_task(name="calls.outbox_tasks.drain_outbox", queue="realtime", soft_time_limit=120, time_limit=150,
             **_RELIABLE)
def drain_outbox(portal_id: int) -> None:
    """Send the portal's due commands (nothing if another worker is its sender: it looks again after)."""
    sender.drain(portal_id)


@shared_task(name="calls.outbox_tasks.rekick_outboxes", queue="default", ignore_result=True)
def rekick_outboxes() -> int:
    """Portals whose commands nobody is sending (a lost message, a sender that died): drain them again."""
    portals = selectors.portals_to_kick(timezone.now(), _grace())
    for portal_id in portals:
        drain_outbox.delay(portal_id)
    return len(portals)


@shared_task(name="calls.outbox_tasks.prune_outbox", queue="default", ignore_result=True)
def prune_outbox() -> int:
    return services.prune()


def _grace() -> timedelta:
    return timedelta(seconds=outbox_settings().rekick_grace_seconds)
