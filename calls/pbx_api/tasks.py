"""Beat housekeeping of the PBX API: webhook-id receipts past their 24-hour replay window."""

from __future__ import annotations

from celery import shared_task

from calls.pbx_api.receipts import purge_expired_receipts


@shared_task(name="calls.pbx_api.tasks.purge_expired_receipts", queue="bulk", ignore_result=True)
def purge_expired_receipts_task() -> int:
    """Every signed request leaves a receipt: without this the table grows by one row per request."""
    return purge_expired_receipts()
