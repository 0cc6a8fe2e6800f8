"""Writing the REST log: one row per request to Bitrix24, already redacted by b24client.

Every request a worker sends is logged, so the row is one parametrised INSERT instead of a model instance
built and saved (about a tenth of the sender's CPU per request); values go through the fields' own database
preparation (JSON, datetimes), as a save would.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.db import connection
from django.utils import timezone

from .models import RestCallLog

_COLUMNS = ("portal", "member_id", "method", "url", "request", "response", "status", "error", "duration_ms",
            "created_at")


@cache
def _sql(vendor: str) -> str:
    q = connection.ops.quote_name
    columns = ", ".join(q(RestCallLog._meta.get_field(name).column) for name in _COLUMNS)
    # Only the model's quoted table and column names go into the text; every value is a parameter.
    return (f"INSERT INTO {q(RestCallLog._meta.db_table)} ({columns}) "  # noqa: S608
            f"VALUES ({', '.join(['%s'] * len(_COLUMNS))})")


def record(portal_id: int | None, entry: dict[str, Any]) -> None:
    """Store one b24client recorder entry (``member_id``, ``method``, ``url``, ``request``, ``response``,
    ``status``, ``error``, ``duration_ms``) for ``portal_id``."""
    request = entry.get("request")
    values = {
        "portal": portal_id,
        "member_id": str(entry.get("member_id") or "")[:64],
        "method": str(entry.get("method") or "")[:200],
        "url": str(entry.get("url") or ""),
        "request": request if request is not None else {},
        "response": entry.get("response"),
        "status": entry.get("status"),
        "error": str(entry.get("error") or "")[:255],
        "duration_ms": int(entry.get("duration_ms") or 0),
        "created_at": timezone.now(),
    }
    params = [RestCallLog._meta.get_field(name).get_db_prep_save(values[name], connection) for name in _COLUMNS]
    with connection.cursor() as cursor:
        cursor.execute(_sql(connection.vendor), params)
