"""Taking an inbox event for its call: marked processed and read back in one prepared statement.

Every PBX event is applied once: as ORM statements that is a locking SELECT of the event (with its
connection) and an UPDATE of the same row, both compiled anew per event. One ``UPDATE … RETURNING``
(PostgreSQL, and SQLite since 3.35) matches only a pending event, takes its row lock until the caller's
transaction ends, and gives back what applying it needs; a worker that comes second waits for that lock and
then matches nothing (the event is processed already). Values go through the fields' own database
preparation and conversion (datetimes, JSON).
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from django.db import connection

from calls.models import PbxEvent

_RETURNED = ("connection_id", "event_id", "type", "call_id", "payload", "attempts", "slot")


def _field(name: str) -> Any:
    return PbxEvent._meta.get_field(name)


@cache
def _sql(vendor: str) -> str:
    q = connection.ops.quote_name
    col = {f.name if f.name != "connection" else "connection_id": q(f.column) for f in PbxEvent._meta.concrete_fields}
    returned = ", ".join(col[name] for name in _RETURNED)
    # Only quoted table and column names of the model go into the text; every value is a parameter.
    return (f"UPDATE {q(PbxEvent._meta.db_table)} SET {col['status']} = %s, "  # noqa: S608
            f"{col['attempts']} = {col['attempts']} + 1, {col['processed_at']} = %s, {col['error']} = %s "
            f"WHERE {col['id']} = %s AND {col['status']} = %s RETURNING {returned}")


def take_pending(pbx_event_pk: int, now: datetime) -> PbxEvent | None:
    """The event marked processed at ``now`` (in the caller's transaction), or None when it is not pending
    (processed or failed already, or gone)."""
    params = (_field("status").get_db_prep_save(PbxEvent.Status.PROCESSED, connection),
              _field("processed_at").get_db_prep_save(now, connection), "", pbx_event_pk,
              _field("status").get_db_prep_save(PbxEvent.Status.PENDING, connection))
    with connection.cursor() as cursor:
        cursor.execute(_sql(connection.vendor), params)
        row = cursor.fetchone()
    if row is None:
        return None
    values = dict(zip(_RETURNED, row, strict=True))
    values["payload"] = _field("payload").from_db_value(values["payload"], None, connection)
    return PbxEvent(pk=pbx_event_pk, status=PbxEvent.Status.PROCESSED, processed_at=now, error="", **values)
