"""Celery task of the PBX's lines: mirror them into Bitrix24 external lines when ``PUT …/lines`` could not."""

from __future__ import annotations

from celery import shared_task

from calls.lines.bitrix24_sync import sync_lines_to_bitrix24


# The name it was queued under before calls/ was laid out by scenario: queued messages must still run.
@shared_task(name="calls.tasks.sync_pbx_lines", queue="bulk", acks_late=True, reject_on_worker_lost=True,
             ignore_result=True)
def sync_pbx_lines(connection_id: int) -> None:
    sync_lines_to_bitrix24(connection_id)
