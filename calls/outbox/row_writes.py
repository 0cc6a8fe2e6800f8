"""The sender's per-row writes of a request's commands, as one statement each.

A request's commands each get their own values (the parameters this send carries, the outcome Bitrix24
gave): as ORM statements that is a ``bulk_update`` whose ``CASE WHEN`` per field Django compiles anew on
every request, the costliest statements of a drain; an ``executemany`` of one row's statement costs the driver
a round of work per row. One parametrised ``UPDATE … FROM (VALUES …)`` does the same on PostgreSQL and SQLite;
values go through the fields' own database preparation (JSON, datetimes).
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
def _sql(kind: str, vendor: str, rows: int) -> str:
    q = connection.ops.quote_name
    table = q(OutboxCommand._meta.db_table)
    col = {name: q(_field(name).column) for name in (
        "id", "status", "sender_token", "attempts", "attempted_at", "updated_at", "sent_params", "result", "error",
        "completed_at")}
    # A literal of a VALUES list has no type of its own on PostgreSQL (a NULL in every row reads as text).
    json = "CAST({} AS jsonb)" if vendor == "postgresql" else "{}"
    # Only quoted table and column names of the model go into the text; every value is a parameter. One
    # statement for all the rows (``UPDATE … FROM (VALUES …)``, PostgreSQL and SQLite ≥ 3.33): atomic by itself.
    if kind == "sending":
        values = ", ".join(["(%s, %s)"] * rows)
        return (f"UPDATE {table} SET {col['status']} = %s, {col['sender_token']} = %s, "  # noqa: S608
                f"{col['attempts']} = {col['attempts']} + 1, {col['updated_at']} = %s, "
                f"{col['attempted_at']} = COALESCE({col['attempted_at']}, %s), "
                f"{col['sent_params']} = {json.format('v.column2')} "
                f"FROM (VALUES {values}) AS v WHERE {table}.{col['id']} = v.column1")
    values = ", ".join(["(%s, %s, %s, %s)"] * rows)
    return (f"UPDATE {table} SET {col['status']} = v.column2, {col['result']} = {json.format('v.column3')}, "  # noqa: S608
            f"{col['error']} = {json.format('v.column4')}, {col['completed_at']} = %s, {col['updated_at']} = %s "
            f"FROM (VALUES {values}) AS v WHERE {table}.{col['id']} = v.column1 "
            f"AND {table}.{col['sender_token']} = %s AND {table}.{col['status']} = %s")


def mark_sending(token: str, now: datetime, sent: Sequence[tuple[int, dict[str, Any]]]) -> None:
    """Claimed by ``token``: attempted (first at ``now``), with the exact parameters of this send."""
    if not sent:
        return
    at = _prep("updated_at", now)
    params: list[Any] = [_prep("status", Status.SENDING), token, at, at]
    for pk, sent_params in sent:
        params += [pk, _prep("sent_params", sent_params)]
    with connection.cursor() as cursor:
        cursor.execute(_sql("sending", connection.vendor, len(sent)), params)


def store_outcomes(token: str, now: datetime, outcomes: Sequence[tuple[int, str, Any, Any]]) -> None:
    """Each ``(pk, status, result, error)`` on its row, if ``token`` still holds it (``sending``); one statement."""
    if not outcomes:
        return
    at = _prep("completed_at", now)
    params: list[Any] = [at, at]
    for pk, status, result, error in outcomes:
        params += [pk, _prep("status", status), _prep("result", result), _prep("error", error)]
    params += [token, _prep("status", Status.SENDING)]
    with connection.cursor() as cursor:
        cursor.execute(_sql("outcomes", connection.vendor, len(outcomes)), params)
