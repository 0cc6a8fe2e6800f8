"""Beat housekeeping of PBX connections: signing secrets long expired."""

from __future__ import annotations

from celery import shared_task

from calls.connections.services import purge_expired_secrets


@shared_task(name="calls.connections.tasks.purge_expired_secrets", queue="bulk", ignore_result=True)
def purge_expired_secrets_task() -> int:
    return purge_expired_secrets()
