"""Beat housekeeping of the recordings package (a thin task; the logic is in ``housekeeping``).

Not found by ``autodiscover_tasks`` (which looks only at ``<app>.tasks``): listed in ``CELERY_IMPORTS``.
"""

from __future__ import annotations

from pathlib import Path

from celery import shared_task
from django.conf import settings

from . import housekeeping


# bulk: the queue of the recording transfers whose leftovers it removes. Idempotent, so no acks_late
# needed: a lost run is simply the next hour's.
@shared_task(name="calls.recordings.tasks.remove_stale_temp_files", queue="bulk", ignore_result=True)
def remove_stale_temp_files() -> int:
    """Remove download/conversion temp files a killed worker left in RECORDINGS_DIR/tmp (older than 6 h,
    far beyond the longest transfer); returns how many."""
    return housekeeping.remove_stale_temp_files(Path(settings.RECORDINGS_DIR))
