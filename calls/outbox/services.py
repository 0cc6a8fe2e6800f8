"""Writing to the outbox: a call's commands (``enqueue``), taking outcomes in (``mark_applied``), pruning."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from calls.models import Call, OutboxCommand
from calls.outbox.conf import outbox_settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewCommand:
    key: str  # stable per call and step: what makes a repeated run find its command
    kind: str  # OutboxCommand.Kind
    method: str
    params: dict[str, Any]
    priority: int  # calls.outbox.packing.PRIORITY_*
    depends_on: str | None = None  # the key of a command written before it (same call, or a line add)
    # Written again, it counts as never sent before (the call's own mark says it never was).
    fresh: bool = False
    # The key was made new for this command (a card change): no row can hold it, so none is looked for.
    unseen: bool = False


def enqueue(portal_id: int, call_id: int | None, commands: Sequence[NewCommand]) -> dict[str, OutboxCommand]:
    """Write ``commands`` (in the caller's transaction) and return the rows by key.

    A key already written keeps its row while its outcome is not taken in: it is the same command (a run
    repeated after a crash, a line another call is adding). One whose outcome the reconciler took in is
    written again in place with the new parameters (a retry; a register's are the same ones, so Bitrix24
    answers with the same CALL_ID), for the call that needs it now; its attempts count on (a finish "not
    found" after an attempt is done) unless the command is ``fresh``.
    """
    rows: dict[str, OutboxCommand] = {}
    if not commands:
        return rows
    now = timezone.now()
    keys = [c.key for c in commands if not c.unseen] + [c.depends_on for c in commands if c.depends_on]
    existing = {r.key: r for r in OutboxCommand.objects.filter(portal_id=portal_id, key__in=keys)} if keys else {}
    for command in commands:
        depends_on = (rows.get(command.depends_on) or existing.get(command.depends_on)) if command.depends_on else None
        if (depends_on is not None and depends_on.kind == OutboxCommand.Kind.LINE
                and depends_on.status == OutboxCommand.Status.PENDING and depends_on.priority > command.priority):
            # The lines sync's add (housekeeping) of a line a call is registered on now goes with the register:
            # claimed by priority, it would otherwise wait behind the portal's every other command.
            OutboxCommand.objects.filter(pk=depends_on.pk, priority__gt=command.priority).update(
                priority=command.priority, updated_at=now)
            depends_on.priority = command.priority
        row = existing.get(command.key)
        if row is None:
            fields = {"portal_id": portal_id, "call_id": call_id, "key": command.key, "kind": command.kind,
                      "method": command.method, "params": command.params, "priority": command.priority,
                      "depends_on": depends_on, "due_at": now}
            if command.kind != OutboxCommand.Kind.LINE:
                # A call's own keys are written under its lease (and found above after a crash): no race.
                row = OutboxCommand.objects.create(**fields)
            else:
                try:
                    with transaction.atomic():
                        row = OutboxCommand.objects.create(**fields)
                except IntegrityError:  # another call's run wrote the same line add a moment ago
                    row = OutboxCommand.objects.get(portal_id=portal_id, key=command.key)
        elif row.applied_at is not None:
            fields = {"call_id": call_id, "params": command.params, "priority": command.priority,
                      "depends_on": depends_on, "due_at": now, "status": OutboxCommand.Status.PENDING,
                      "result": None, "error": None, "completed_at": None, "applied_at": None}
            if command.fresh:
                fields.update(attempts=0, attempted_at=None)
            OutboxCommand.objects.filter(pk=row.pk).update(**fields, updated_at=now)
            for name, value in fields.items():
                setattr(row, name, value)
        rows[command.key] = row
    return rows


def mark_applied(command_ids: Iterable[int]) -> None:
    OutboxCommand.objects.filter(pk__in=list(command_ids), applied_at=None).update(applied_at=timezone.now())


def prune(now: datetime | None = None) -> int:
    """Delete the commands of calls finished (or dead-lettered) longer than the retention ago, and those of no
    call (line adds, user pages) whose outcome was taken in that long ago; returns how many."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=outbox_settings().retention_seconds)
    gone = (Q(call__finished_at__lt=cutoff) | Q(call__status=Call.Status.DEAD, call__updated_at__lt=cutoff)
            | Q(call__isnull=True, applied_at__lt=cutoff))
    deleted, _ = OutboxCommand.objects.filter(gone).delete()
    return deleted


# --- kicks of the drain task ------------------------------------------------------------------------------
#
# Every sender that lets go with commands still pending asks for a drain when the earliest is due. Many
# reconcilers of one portal would so queue many drains for about the same moment: a kick already queued for
# no later than ours stands in for it (recorded in the cache; a lost record costs one redundant drain,
# the beat's ``rekick_outboxes`` covers a lost message).

_KICK_SLACK_S = 0.25


def kick_delay(portal_id: int, next_due: datetime) -> float | None:
    """Seconds until a drain of the portal should run, or None when one already queued comes by then."""
    due = next_due.timestamp()
    now = time.time()
    key = f"calls:outbox-kick:{portal_id}"
    try:
        queued = cache.get(key)
        if isinstance(queued, (int, float)) and now - 1.0 < queued <= due + _KICK_SLACK_S:
            return None
        cache.set(key, max(due, now), timeout=int(max(0.0, due - now)) + 5)
    except Exception:  # the cache only saves work: without it, kick
        logger.warning("outbox kick cache unavailable", exc_info=True)
    return max(0.0, due - now)
