"""Applying an inbox event to its call: each write one prepared statement.

Every PBX event is applied once: as ORM statements that is a locking SELECT of the event (with its
connection) and an UPDATE of the same row, then a locking SELECT of the call and an UPDATE of it, each compiled
anew per event. Here it is two ``UPDATE … RETURNING`` statements (PostgreSQL, and SQLite since 3.35), their
text built once:

* ``take_pending`` matches only a pending event, takes its row lock until the caller's transaction ends, and
  gives back what applying it needs; a worker that comes second waits for that lock and then matches nothing
  (the event is processed already);
* ``record_fact`` bumps the known call's ``facts_version`` under its row lock, sets its status back to pending
  and, when asked and nobody holds it, claims it for its sync, all in the one UPDATE; a call that is new, dead
  or joined through ``origin_request_id`` is the caller's to handle (it matches nothing or is not asked).

Values go through the fields' own database preparation and conversion (datetimes, JSON).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from django.db import connection

from calls.models import Call, PbxEvent

_RETURNED = ("connection_id", "event_id", "type", "call_id", "payload", "attempts", "slot")


def _field(name: str) -> Any:
    return PbxEvent._meta.get_field(name)


def _columns(model: Any) -> dict[str, str]:
    q = connection.ops.quote_name
    return {f.attname: q(f.column) for f in model._meta.concrete_fields}


@cache
def _sql(vendor: str) -> str:
    q = connection.ops.quote_name
    col = _columns(PbxEvent)
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


@dataclass(frozen=True)
class Recorded:
    call_pk: int
    portal_id: int
    claimed: bool  # the call's sync lease is ours (the token asked for)


@cache
def _fact_sql(vendor: str, claim: bool) -> str:
    q = connection.ops.quote_name
    col = _columns(Call)
    free = f"({col['lease_until']} IS NULL OR {col['lease_until']} < %s)"
    # The SET list reads the row as it was before the UPDATE (both databases): the lease is taken only when free.
    lease = (f", {col['lease_token']} = CASE WHEN {free} THEN %s ELSE {col['lease_token']} END"
             f", {col['lease_until']} = CASE WHEN {free} THEN %s ELSE {col['lease_until']} END") if claim else ""
    # A call kept out of Bitrix24 by the settings (``skip_reason``) may still come in; one between two
    # extensions (ignored, no reason) stays ignored.
    return (f"UPDATE {q(Call._meta.db_table)} SET {col['facts_version']} = {col['facts_version']} + 1, "  # noqa: S608
            f"{col['updated_at']} = %s, {col['first_fact_at']} = COALESCE({col['first_fact_at']}, %s), "
            f"{col['status']} = CASE WHEN {col['status']} = %s AND {col['skip_reason']} = '' "
            f"THEN {col['status']} ELSE %s END{lease} "
            f"WHERE {col['connection_id']} = %s AND {col['pbx_call_id']} = %s AND {col['status']} <> %s "
            f"RETURNING {col['id']}, {col['portal_id']}, {col['lease_token']}")


def record_fact(connection_id: int, pbx_call_id: str, now: datetime, *, token: str | None = None,
                lease_until: datetime | None = None) -> Recorded | None:
    """Count a new fact on the connection's known call ``pbx_call_id`` (in the caller's transaction) and, with
    ``token``, claim the call for its sync until ``lease_until`` if nobody holds it; None when there is no such
    call or it is dead."""
    prep = Call._meta.get_field("updated_at").get_db_prep_save
    at = prep(now, connection)
    params: list[Any] = [at, at, Call.Status.IGNORED, Call.Status.PENDING]
    if token is not None:
        params += [at, token, at, prep(lease_until, connection)]
    params += [connection_id, pbx_call_id, Call.Status.DEAD]
    with connection.cursor() as cursor:
        cursor.execute(_fact_sql(connection.vendor, token is not None), params)
        row = cursor.fetchone()
    if row is None:
        return None
    call_pk, portal_id, lease_token = row
    return Recorded(call_pk, portal_id, token is not None and lease_token == token)
