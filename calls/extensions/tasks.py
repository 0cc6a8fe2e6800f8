"""Celery task of the extension directory (thin: the logic is ``extension_map.sync_extensions``)."""

from __future__ import annotations

from celery import shared_task

from calls.extensions import extension_map


@shared_task(name="calls.extensions.tasks.sync_extensions", queue="bulk", acks_late=True, ignore_result=True)
def sync_extensions(portal_id: int) -> None:
    """Read the portal's users from Bitrix24 now (the admin pressed "sync"), or take in the pages of a read
    that waited in the portal's outbox; a failure is recorded on the directory (its last error), and the last
    good map is kept."""
    extension_map.sync_extensions(portal_id)
