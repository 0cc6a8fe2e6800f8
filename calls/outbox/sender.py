"""The portal's sender: drains its outbox, one request at a time, while it holds the portal's lease.

Exactly once, for a command inside a batch as for one alone:

* one sender per portal at a time: a lease (``OutboxSender``) taken with a compare-and-set UPDATE, any
  worker taking over one that expired; no global lock, so one portal never waits for another;
* the claim marks the commands ``sending`` (attempted, with the exact parameters of this send) and commits
  *before* the request; a sender killed mid-request leaves them ``sending``, and the next sender re-sends
  exactly those (a register the same ``EXTERNAL_CALL_ID``: the same CALL_ID; a finish answered "Call is not
  found" after an attempt counts as done in the reconciler; show/hide are idempotent);
* every command's outcome is stored on its own row: one failed command of a batch fails alone (the batch is
  sent with ``halt=0``), the rest stand;
* a rate limit (our bucket or Bitrix24's 503) and a blocked method (429 ``OPERATION_TIME_LIMIT``, or close to
  its budget: ``Bitrix24Client.method_wait``) are no failures: the commands concerned stay pending with a
  later ``due_at``; a held method holds only its own commands (docs/bitrix24-contract.md §3.1, §3.2);
* full batches: the sender waits for room in the portal's request bucket *before* it claims
  (``Bitrix24Client.reserve_request``: the request is taken from the budget then, so no other request of the
  portal, an upload, takes the room while it claims; given back when the claim finds nothing that may go),
  so the commands written while it waits go in that request; with room a lone command goes at once. A wait beyond
  ``bucket_wait_seconds`` (0 for a call's reconciler draining inline: it holds a worker other calls need)
  ends the drain, and the portal's drain task comes back when the bucket has room (``next_due``);
* after letting go the sender looks once more for due commands, so a command written while it was finishing
  (its writer found the portal busy) is never stranded.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import BooleanField, ExpressionWrapper, F, Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from b24client import errors as b24errors
from calls import leases
from calls.models import OutboxCommand, OutboxSender
from calls.outbox import errors as outbox_errors
from calls.outbox import packing, row_writes, selectors, signals
from calls.outbox.conf import outbox_settings
from portals.errors import PortalUnavailable
from portals.services import bitrix24_client_for

logger = logging.getLogger(__name__)

Status = OutboxCommand.Status
HELD_FOR_BUDGET = "METHOD_TIME_BUDGET"  # left out by ``method_wait``: blocked, or close to its budget


@dataclass
class DrainReport:
    requests: int = 0
    commands: int = 0
    batched_commands: int = 0
    busy: bool = False  # another worker is the portal's sender
    settled_calls: set[int] = field(default_factory=set)  # calls whose commands got an outcome
    settled_commands: set[int] = field(default_factory=set)  # the commands that got one
    next_due: datetime | None = None
    bucket_until: datetime | None = None  # stopped for the request bucket: no request may go before this


@dataclass(frozen=True)
class _Outcome:
    status: str  # done | failed | later
    result: Any = None
    error: dict[str, Any] | None = None  # failed: why; later: what holds it back (kept on the pending row)
    wait: float = 0.0  # later: seconds


# --- the lease -----------------------------------------------------------------------------------------


def take_lease(portal_id: int) -> str | None:
    """Become the portal's sender, unless a live one is (or was until its lease ran out)."""
    return leases.take(OutboxSender, portal_id, outbox_settings().sender_lease_seconds)


def renew_lease(portal_id: int, token: str) -> bool:
    return leases.renew(OutboxSender, portal_id, token, outbox_settings().sender_lease_seconds)


def release_lease(portal_id: int, token: str) -> None:
    leases.release(OutboxSender, portal_id, token)


# --- draining --------------------------------------------------------------------------------------------


def drain(portal_id: int, *, for_call: int | None = None, max_requests: int | None = None,
          client: Any = None, awaiting: Collection[int] | None = None,
          bucket_wait: float | None = None) -> DrainReport:
    """Send the portal's due commands if no other worker is its sender.

    ``for_call``: a call's reconciler draining inline, which stops as soon as that call's commands have their
    outcomes (or after ``max_requests``), leaving the rest to the drain task (``signals.drained``'s
    ``next_due``). Listeners hear which calls got outcomes (but ``for_call``, which reads them itself).
    ``awaiting``: that call's open commands, when its reconciler knows them all: it stops once these have their
    outcomes, without asking the database after each request. ``bucket_wait``: the longest it sleeps for room
    in the request bucket (default: none for a call's reconciler, ``bucket_wait_seconds`` for the drain task).
    """
    report = DrainReport()
    while True:
        token = take_lease(portal_id)
        if token is None:
            report.busy = True
            break
        try:
            if client is None:
                client = _client(portal_id, report)
            stopped = client is None or _send_due(portal_id, token, client, report, for_call, max_requests,
                                                  awaiting, bucket_wait)
        finally:
            release_lease(portal_id, token)
        # Looked at after letting go: a writer that found us busy committed its commands before it tried.
        report.next_due = selectors.next_due(portal_id)
        if report.next_due is not None and report.bucket_until is not None:
            report.next_due = max(report.next_due, report.bucket_until)
        if stopped or report.next_due is None or report.next_due > timezone.now():
            break
    signals.drained.send(sender=OutboxCommand, portal_id=portal_id,
                         call_ids=sorted(report.settled_calls - {for_call}), next_due=report.next_due)
    return report


def _client(portal_id: int, report: DrainReport) -> Any:
    try:
        return bitrix24_client_for(portal_id)
    except PortalUnavailable as exc:
        # Nothing can be sent: the calls' reconcilers hear it (and decide between waiting and a dead letter).
        due = OutboxCommand.objects.filter(portal_id=portal_id, status=Status.PENDING, due_at__lte=timezone.now())
        report.settled_calls.update(c for c in due.values_list("call_id", flat=True) if c is not None)
        due.update(status=Status.FAILED, completed_at=timezone.now(), error={
            "type": "Transient", "code": outbox_errors.PORTAL_UNAVAILABLE, "description": f"portal is {exc.status}",
            "status": None})
        return None


def _send_due(portal_id: int, token: str, client: Any, report: DrainReport, for_call: int | None,
              max_requests: int | None, awaiting: Collection[int] | None, bucket_wait: float | None) -> bool:
    """Requests until nothing is due; True when it stopped early (the caller must not go round again)."""
    sent = 0
    longest = bucket_wait if bucket_wait is not None else (
        0.0 if for_call is not None else outbox_settings().bucket_wait_seconds)
    while True:
        if max_requests is not None and sent >= max_requests:
            return True
        # A call's reconciler sending inline has just written what it awaits: due, no need to ask.
        known_due = not sent and for_call is not None and bool(awaiting)
        if not _room_for_a_request(portal_id, client, longest, report, known_due=known_due):
            return True
        if sent and not renew_lease(portal_id, token):
            client.release_request()
            return True  # taken over: our lease had run out
        claim = _claim(portal_id, token, client, report)
        claimed = claim.commands
        if not claimed:
            # Due commands that may not go yet (a held method, a register still to come): the request taken
            # for them goes back to the portal's budget instead of being spent on nothing.
            client.release_request()
            return False
        planned = [c.planned for c in claimed]
        outcomes, rate_limited = _send(client, planned)
        _store(token, claimed, outcomes, report)
        sent += 1
        report.requests += 1
        report.commands += len(planned)
        if len(planned) > 1:
            report.batched_commands += len(planned)
        if rate_limited:
            return True
        if for_call is not None and _call_settled(for_call, awaiting, report):
            return True
        if not claim.more:
            return False


def _call_settled(call_id: int, awaiting: Collection[int] | None, report: DrainReport) -> bool:
    if awaiting is not None:
        return report.settled_commands.issuperset(awaiting)
    return not selectors.call_has_open_commands(call_id)


def _room_for_a_request(portal_id: int, client: Any, longest: float, report: DrainReport, *,
                        known_due: bool = False) -> bool:
    """Take the next request from the bucket (waiting up to ``longest``) before claiming; False: not within
    ``longest`` (``report.bucket_until`` says when). Nothing due: nothing taken or slept for (the claim finds
    nothing, or a dead sender's commands, whose send then takes its request as any other). ``known_due``
    (the caller just wrote commands that are due) skips that look, on every event's path: should the claim
    find nothing after all, it gives the request back."""
    if not known_due and not selectors.has_due(portal_id):
        return True
    wait = client.reserve_request(longest)
    if wait <= 0:
        return True
    report.bucket_until = timezone.now() + timedelta(seconds=wait)
    return False


@dataclass(frozen=True)
class _Claimed:
    planned: packing.Planned
    call_id: int | None


@dataclass(frozen=True)
class _Claim:
    commands: list[_Claimed]
    # Due commands the claim saw and left for a later request (past the window, or not packed in this one):
    # False lets the sender stop without claiming again to find nothing (what is written meanwhile is found
    # by the look after letting go).
    more: bool = False


def _claim(portal_id: int, token: str, client: Any, report: DrainReport) -> _Claim:
    """Pick the next request's commands and mark them sending, committed before anything is sent."""
    now = timezone.now()
    window = outbox_settings().claim_window
    with transaction.atomic():
        # A live sender writes every outcome before it lets go: ``sending`` rows of another token are a dead
        # sender's (killed mid-request), and are sent again.
        orphaned = Q(status=Status.SENDING) & ~Q(sender_token=token)
        due = (OutboxCommand.objects.filter(portal_id=portal_id)
               .filter(Q(status=Status.PENDING, due_at__lte=now) | orphaned)
               .order_by("priority", "due_at", "pk"))
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        # The parameters as text, decoded only for the commands that go (at most 50 of a window of hundreds);
        # whether a CALL_ID is still to come is all the packing needs of the others.
        rows = list(due.values("pk", "call_id", "method", "priority", "depends_on_id", "created_at",
                               params_text=Cast("params", TextField()),
                               call_id_null=ExpressionWrapper(Q(params__CALL_ID=None), BooleanField()))[:window])
        if not rows:
            return _Claim([])
        read = len(rows)
        rows = _hold_back_waiting_methods(client, rows, now)
        dep_ids = {r["depends_on_id"] for r in rows if r["depends_on_id"]} - {r["pk"] for r in rows}
        dependencies = {
            pk: packing.Dependency(_dependency_status(status), result, due_at.timestamp())
            for pk, status, due_at, result in OutboxCommand.objects.filter(pk__in=dep_ids)
            .values_list("pk", "status", "due_at", "result")
        } if dep_ids else {}
        texts = {r["pk"]: r["params_text"] for r in rows}
        packed = packing.pack([_pending(r) for r in rows], dependencies,
                              params_of=lambda c: json.loads(texts[c.id] or "null") or {})
        call_ids = {r["pk"]: r["call_id"] for r in rows}
        if packed.blocked:
            OutboxCommand.objects.filter(pk__in=packed.blocked).update(
                status=Status.FAILED, error=outbox_errors.dependency_failed(), completed_at=now, updated_at=now)
            report.settled_calls.update(call_ids[pk] for pk in packed.blocked if call_ids[pk])
            report.settled_commands.update(packed.blocked)
        pushed: dict[datetime, list[int]] = {}
        for command_id, dep_id in packed.waiting.items():
            # Due when what it waits for is (not before: the drain would find it due and go round again).
            dep_due = dependencies[dep_id].due_at if dep_id in dependencies else 0.0
            pushed.setdefault(max(now + timedelta(seconds=1), datetime.fromtimestamp(dep_due, tz=UTC)),
                              []).append(command_id)
        for due_at, command_ids in pushed.items():
            OutboxCommand.objects.filter(pk__in=command_ids).update(due_at=due_at, updated_at=now)
        more = read >= window or len(packed.commands) + len(packed.blocked) + len(packed.waiting) < len(rows)
        if not packed.commands:
            return _Claim([], more)
        row_writes.mark_sending(token, now, [(p.command_id, p.params) for p in packed.commands])
    return _Claim([_Claimed(p, call_ids[p.command_id]) for p in packed.commands], more)


def _hold_back_waiting_methods(client: Any, rows: list[dict], now: datetime) -> list[dict]:
    """Leave out (and push back) the commands of methods that may not be sent yet; the others go."""
    waits = client.method_waits(r["method"] for r in rows)
    held = {m: w for m, w in waits.items() if w > 0}
    for method, wait in held.items():
        reason = {"type": "MethodBlocked", "code": HELD_FOR_BUDGET, "status": None,
                  "description": f"held {wait:.0f} s for its operating-time budget (docs/bitrix24-contract.md §3.2)"}
        OutboxCommand.objects.filter(pk__in=[r["pk"] for r in rows if r["method"] == method]).update(
            due_at=now + timedelta(seconds=wait), error=reason, updated_at=now)
        logger.info("outbox: %s held for %.0f s (method time budget)", method, wait)
    return [r for r in rows if r["method"] not in held]


def _dependency_status(status: str) -> str:
    if status == Status.DONE:
        return packing.DONE
    if status == Status.FAILED:
        return packing.FAILED
    return packing.WAITING


def _pending(row: dict) -> packing.Pending:
    return packing.Pending(id=row["pk"], call_id=row["call_id"], method=row["method"], params={},
                           priority=row["priority"], depends_on=row["depends_on_id"],
                           order=row["created_at"].timestamp(), call_id_null=bool(row["call_id_null"]))


def _send(client: Any, planned: Sequence[packing.Planned]) -> tuple[dict[int, _Outcome], bool]:
    """(outcome per command, whether the portal's request budget is spent)."""
    if len(planned) == 1:
        p = planned[0]
        try:
            return {p.command_id: _Outcome("done", client.call(p.method, p.params).result)}, False
        except b24errors.RateLimited as exc:
            return {p.command_id: _later(exc, exc.retry_after)}, True
        except Exception as exc:
            return {p.command_id: _failure(exc)}, False
    try:
        result = client.batch({p.key: (p.method, p.params) for p in planned}, halt=False)
    except b24errors.RateLimited as exc:
        return {p.command_id: _later(exc, exc.retry_after) for p in planned}, True
    except Exception as exc:
        # The request as a whole failed (a timeout, a dead token): every command in it shares the outcome.
        outcome = _failure(exc)
        return {p.command_id: outcome for p in planned}, False
    outcomes: dict[int, _Outcome] = {}
    rate_limited = False
    for p in planned:
        if p.key in result.errors:
            exc = result.errors[p.key]
            rate_limited = rate_limited or isinstance(exc, b24errors.RateLimited)
            outcomes[p.command_id] = (_later(exc, exc.retry_after)
                                      if isinstance(exc, b24errors.RateLimited) else _failure(exc))
        else:
            outcomes[p.command_id] = _Outcome("done", result.result.get(p.key))
    return outcomes, rate_limited


def _later(exc: b24errors.Bitrix24Error, wait: float) -> _Outcome:
    held = {"type": type(exc).__name__, "code": exc.code, "description": exc.description[:500], "status": exc.status}
    return _Outcome("later", error=held, wait=wait)


def _failure(exc: Exception) -> _Outcome:
    if isinstance(exc, b24errors.MethodBlocked):
        return _later(exc, max(1.0, exc.until - time.time()))
    if not isinstance(exc, b24errors.Bitrix24Error):
        logger.exception("outbox: a command could not be sent", exc_info=exc)
    return _Outcome("failed", error=outbox_errors.record(exc))


def _store(token: str, claimed: Sequence[_Claimed], outcomes: dict[int, _Outcome], report: DrainReport) -> None:
    """Each command's outcome on its row, all or none (one UPDATE, or a transaction when some rows go back to
    pending); only rows this sender still holds (a sender whose lease ran out and was taken over writes
    nothing)."""
    now = timezone.now()
    mine = OutboxCommand.objects.filter(sender_token=token, status=Status.SENDING)
    later: list[tuple[int, _Outcome]] = []
    settled: list[tuple[int, str, Any, Any]] = []
    for c in claimed:
        outcome = outcomes[c.planned.command_id]
        if outcome.status == "later":
            later.append((c.planned.command_id, outcome))
            continue
        settled.append((c.planned.command_id, Status.DONE if outcome.status == "done" else Status.FAILED,
                        _jsonable(outcome.result), outcome.error))
    # The settled outcomes are one UPDATE, atomic by itself: a transaction only when rows go back pending too.
    with transaction.atomic() if later and (settled or len(later) > 1) else contextlib.nullcontext():
        for pk, outcome in later:
            # Never reached Bitrix24's method: not an attempt, not a failure.
            mine.filter(pk=pk).update(
                status=Status.PENDING, due_at=now + timedelta(seconds=outcome.wait),
                attempts=F("attempts") - 1, error=outcome.error, updated_at=now)
        row_writes.store_outcomes(token, now, settled)
    report.settled_calls.update(c.call_id for c in claimed
                                if c.call_id is not None and outcomes[c.planned.command_id].status != "later")
    report.settled_commands.update(pk for pk, _status, _result, _error in settled)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    return str(value)
