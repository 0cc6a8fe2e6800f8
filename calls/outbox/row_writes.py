"""The sender's per-row writes of a request's commands, as one prepared ``executemany`` each.

A request's commands each get their own values (the parameters this send carries, the outcome Bitrix24
gave): as ORM statements that is a ``bulk_update`` whose ``CASE WHEN`` per field Django compiles anew on
every request, the costliest statements of a drain. One parametrised statement run over the rows does the
same on PostgreSQL and SQLite; values go through the fields' own database preparation (JSON, datetimes).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from django.db import connection

from calls.models import OutboxCommand

Status = OutboxCommand.Status


def _field(name: str) -> Any:
    return OutboxCommand._meta.get_field(name)


def _prep(name: str, value: Any) -> Any:
    return _field(name).get_db_prep_save(value, connection)


@cache
def _sql(kind: str, vendor: str) -> str:
    q = connection.ops.quote_name
    table = q(OutboxCommand._meta.db_table)
    col = {name: q(_field(name).column) for name in (
        "id", "status", "sender_token", "attempts", "attempted_at", "updated_at", "sent_params", "result", "error",
        "completed_at")}
    # Only quoted table and column names of the model go into the text; every value is a parameter.
    if kind == "sending":
        return (f"UPDATE {table} SET {col['status']} = %s, {col['sender_token']} = %s, "  # noqa: S608
                f"{col['attempts']} = {col['attempts']} + 1, {col['updated_at']} = %s, "
                f"{col['attempted_at']} = COALESCE({col['attempted_at']}, %s), {col['sent_params']} = %s "
                f"WHERE {col['id']} = %s")
    return (f"UPDATE {table} SET {col['status']} = %s, {col['result']} = %s, {col['error']} = %s, "  # noqa: S608
            f"{col['completed_at']} = %s, {col['updated_at']} = %s "
            f"WHERE {col['id']} = %s AND {col['sender_token']} = %s AND {col['status']} = %s")


def mark_sending(token: str, now: datetime, sent: Sequence[tuple[int, dict[str, Any]]]) -> None:
    """Claimed by ``token``: attempted (first at ``now``), with the exact parameters of this send."""
    if not sent:
        return
    status, at = _prep("status", Status.SENDING), _prep("updated_at", now)
    rows = [(status, token, at, at, _prep("sent_params", params), pk) for pk, params in sent]
    with connection.cursor() as cursor:
        cursor.executemany(_sql("sending", connection.vendor), rows)


def store_outcomes(token: str, now: datetime, outcomes: Sequence[tuple[int, str, Any, Any]]) -> None:
    """Each ``(pk, status, result, error)`` on its row, if ``token`` still holds it (``sending``)."""
    if not outcomes:
        return
    at, sending = _prep("completed_at", now), _prep("status", Status.SENDING)
    rows = [(_prep("status", status), _prep("result", result), _prep("error", error), at, at, pk, token, sending)
            for pk, status, result, error in outcomes]
    with connection.cursor() as cursor:
        cursor.executemany(_sql("outcomes", connection.vendor), rows)
