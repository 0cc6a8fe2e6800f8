"""When a connection's PBX last proved itself: its first and latest correctly signed request.

Written on the PBX API's hot path, so cheaply: one UPDATE per connection per minute per process at
most (the time is kept to the minute), an update of bookkeeping columns that moves no authentication
epoch (``calls.models.connections.BOOKKEEPING_FIELDS``).
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from calls.models import PbxConnection

RESOLUTION = timedelta(minutes=1)

# public_id (never reused, unlike a pk after a test database flush) -> when this process last wrote it
_noted: dict[str, float] = {}
_lock = threading.Lock()


def note_signed_request(connection: PbxConnection) -> None:
    now_monotonic = time.monotonic()
    with _lock:
        last = _noted.get(connection.public_id)
        if last is not None and now_monotonic - last < RESOLUTION.total_seconds():
            return
        _noted[connection.public_id] = now_monotonic
    now = timezone.now()
    PbxConnection.objects.filter(pk=connection.pk).filter(
        Q(last_signed_request_at__isnull=True) | Q(last_signed_request_at__lt=now - RESOLUTION)
    ).update(last_signed_request_at=now, first_signed_request_at=Coalesce("first_signed_request_at", now))


def forget_noted() -> None:
    """Tests: start from a process that has written nothing yet."""
    with _lock:
        _noted.clear()
