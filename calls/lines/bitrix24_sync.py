"""The portal's Bitrix24 external lines kept as its PBXs declare them (docs/bitrix24-contract.md §5.1, §5.2).

Every command of the sync (``telephony.externalLine.get``, ``.add``, ``.update``, ``.delete``) is a command of
the portal's outbox (``calls.outbox``) with no call, at housekeeping priority: the live calls' cards, registers
and finishes go first, and the sync's commands share their batches. A run writes the get (one per portal at a
time), sends the portal's due commands, reads the answer, writes the adds, renames and deletes it calls for
(one batch when several are due), sends them and takes their outcomes in.

Exactly once, as for a call's commands: each command has a key per portal (and number), so a run repeated after
a crash, or two at once, finds the command instead of writing a second; the sender marks it attempted with its
exact parameters before sending, and re-sends exactly those after a crash. A retried add answered "Line already
exists" and a delete answered "Could not find line" count as done: the line is there, or gone, whichever send
did it (the sync deletes only what the get listed: a line deleted by hand since is gone all the same).

A line's add has the key a call's reconciler writes its line add under (``line_command_key``): whichever path
comes first writes the command, the other finds it, and the line is added once however many calls come on it
(a register waiting for the sync's add raises it to its own priority: ``calls.outbox.services.enqueue``).

What still waits behind the portal's other commands when the run ends is taken in by the next run, the
sweeper's (``connections_with_unsynced_lines``). Bitrix24 unavailable (down, rate-limited, tokens dead, portal
unpaid): the lines keep ``bitrix_line_registered=False`` / their ``removed_at`` rows for that retry.

The Bitrix24 line ``NUMBER`` is the E.164 form (``+74951234567``), what ``LINE_NUMBER`` must carry in
``telephony.externalCall.register``; Bitrix24's lines are matched to ours by their digits. A number another
connection of the same portal still lists is not deleted.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from b24client import errors as b24errors
from calls.models import OutboxCommand, PbxConnection, PbxLine
from calls.outbox import errors as outbox_errors
from calls.outbox import packing
from calls.outbox import sender as outbox_sender
from calls.outbox import services as outbox_services
from calls.outbox.conf import outbox_settings
from calls.settings.selectors import display_name
from portals.errors import PortalUnavailable
from portals.models import Portal
from portals.services import bitrix24_client_for

logger = logging.getLogger(__name__)

LINE_GET = "telephony.externalLine.get"
LINE_ADD = "telephony.externalLine.add"
LINE_UPDATE = "telephony.externalLine.update"
LINE_DELETE = "telephony.externalLine.delete"

GET_KEY = "lines:get"
# The answer to a get that an earlier run left (it waited behind the portal's other commands, or so did the
# commands the run wrote from it) is the next run's if it is this recent: whatever we changed in Bitrix24 since
# went through the keyed commands, which the next run finds again. An older one is asked again.
_GET_ANSWER_FRESH_FOR = timedelta(seconds=120)

_OPEN = (OutboxCommand.Status.PENDING, OutboxCommand.Status.SENDING)
_SETTLED = (OutboxCommand.Status.DONE, OutboxCommand.Status.FAILED)
_WAITING = "the line's command waits behind the portal's other Bitrix24 commands"


@dataclass
class LineSyncResult:
    added: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    complete: bool = True
    error: str = ""


def line_add_params(number: str, name: str) -> dict[str, Any]:
    """The one way every path adds a company line (docs/bitrix24-contract.md §5.1): with ``CRM_AUTO_CREATE=Y``
    (outgoing calls on it create their CRM object)."""
    return {"NUMBER": number, "NAME": name, "CRM_AUTO_CREATE": "Y"}


def line_already_exists(exc: b24errors.Bitrix24Error) -> bool:
    """"Line already exists" (added by a concurrent sync a moment ago, or by our own send whose answer was
    lost) counts as success."""
    return isinstance(exc, b24errors.InvalidRequest) and "already exists" in f"{exc.code} {exc.description}".lower()


def line_not_found(exc: b24errors.Bitrix24Error) -> bool:
    """"Could not find line with number …" (update, delete)."""
    return isinstance(exc, b24errors.InvalidRequest) and "could not find line" in exc.description.lower()


def line_command_key(portal: Portal, number: str) -> str:
    """The outbox key of a line's add, one per portal and number, whichever path writes it. A reinstall
    starts with no lines (Bitrix24 drops an app's lines with the app): a new key."""
    installed = int(portal.installed_at.timestamp() * 1000) if portal.installed_at else 0
    return f"line:{installed}:{number}"


def _update_key(number: str) -> str:
    return f"line-update:{number}"


def _delete_key(number: str) -> str:
    return f"line-delete:{number}"


def _digits(number: Any) -> str:
    return re.sub(r"\D", "", str(number or ""))


def _unavailable_errors() -> tuple[type[BaseException], ...]:
    return (
        PortalUnavailable,
        b24errors.Transient,
        b24errors.RateLimited,
        b24errors.MethodBlocked,
        b24errors.TokenDead,
        b24errors.TokenExpired,
    )


def sync_lines_to_bitrix24(connection_id: int) -> LineSyncResult:
    """Make the portal's Bitrix24 external lines match this connection's lines (idempotent).

    Never raises for Bitrix24 being unavailable: the result says ``complete=False`` and the lines keep
    ``bitrix_line_registered=False`` / their ``removed_at`` rows for the retry.
    """
    connection = PbxConnection.objects.select_related("portal").get(pk=connection_id)
    portal = connection.portal
    result = LineSyncResult()
    lines = list(PbxLine.objects.filter(connection=connection).select_related("settings"))
    try:
        client = bitrix24_client_for(portal.pk)
    except PortalUnavailable as exc:
        return _failed(lines, result, exc)
    asked = _ask_for_remote_lines(portal.pk, client)
    if asked.status in _OPEN:
        return _waits(result)
    if asked.status == OutboxCommand.Status.FAILED:
        outbox_services.mark_applied([asked.pk])
        return _failed(lines, result, outbox_errors.exception_of(asked.error, LINE_GET))
    remote = {_digits(item.get("NUMBER")): item for item in (asked.result or []) if isinstance(item, dict)}
    held_elsewhere = set(
        PbxLine.objects.filter(connection__portal_id=portal.pk, removed_at__isnull=True)
        .exclude(connection=connection)
        .values_list("number", flat=True)
    )
    planned = _plan(portal, lines, remote, held_elsewhere, result)
    answered = _answered_since(portal.pk, planned, asked)
    rows = _write(portal.pk, [command for _line, command in planned if command.key not in answered])
    rows.update(answered)
    if any(r.status in _OPEN for r in rows.values()):
        outbox_sender.drain(portal.pk, max_requests=outbox_settings().inline_requests, client=client)
    outcomes = {r.key: r for r in OutboxCommand.objects.filter(pk__in=[r.pk for r in rows.values()])}
    taken_in = [_take_in(line, command, outcomes[command.key], result) for line, command in planned]
    # Outcomes of earlier runs' commands that this run's get made moot (a rename of a line since removed, an add
    # the get shows done): taken in, so that the next command under their key is written anew.
    keys = {key for line in lines for key in (line_command_key(portal, line.number), _update_key(line.number),
                                              _delete_key(line.number))}
    moot = OutboxCommand.objects.filter(portal_id=portal.pk, call=None, applied_at=None, status__in=_SETTLED,
                                        key__in=keys - set(rows)).values_list("pk", flat=True)
    # The answer to the get stays for the next run while this one's commands wait: it finds them by their keys.
    done_with = [asked.pk] if result.complete else []
    outbox_services.mark_applied([pk for pk in taken_in if pk is not None] + list(moot) + done_with)
    return result


def _ask_for_remote_lines(portal_id: int, client: Any) -> OutboxCommand:
    """The portal's get: written (unless one is open, or answered a moment ago and not read yet) and sent with
    the portal's due commands."""
    stale = OutboxCommand.objects.filter(portal_id=portal_id, key=GET_KEY, applied_at=None, status__in=_SETTLED,
                                         completed_at__lt=timezone.now() - _GET_ANSWER_FRESH_FOR)
    outbox_services.mark_applied(stale.values_list("pk", flat=True))
    get = outbox_services.NewCommand(GET_KEY, OutboxCommand.Kind.HOUSEKEEPING, LINE_GET, {},
                                     packing.PRIORITY_HOUSEKEEPING)
    row = _write(portal_id, [get])[GET_KEY]
    if row.status in _OPEN:
        outbox_sender.drain(portal_id, max_requests=outbox_settings().inline_requests, client=client)
        row.refresh_from_db()
    return row


def _answered_since(portal_id: int, planned: Sequence[tuple[PbxLine, outbox_services.NewCommand]],
                    asked: OutboxCommand) -> dict[str, OutboxCommand]:
    """Commands the plan calls for that were done (and taken in) since the get was answered: a call's add of
    its line a moment after the get, a run's own that the get preceded. They stand as this run's outcome
    instead of being sent again."""
    wanted = {command.key: command for _line, command in planned}
    rows = OutboxCommand.objects.filter(portal_id=portal_id, key__in=list(wanted), status__in=_SETTLED,
                                        applied_at__isnull=False, completed_at__gte=asked.completed_at)
    return {r.key: r for r in rows if r.params == wanted[r.key].params and _succeeded(r)}


def _succeeded(row: OutboxCommand) -> bool:
    if row.status == OutboxCommand.Status.DONE:
        return True
    error = outbox_errors.exception_of(row.error, row.method)
    return (row.method == LINE_ADD and line_already_exists(error)) or (
        row.method == LINE_DELETE and line_not_found(error))


def _write(portal_id: int, commands: Sequence[outbox_services.NewCommand]) -> dict[str, OutboxCommand]:
    try:
        with transaction.atomic():
            return outbox_services.enqueue(portal_id, None, commands)
    except IntegrityError:  # another run of the portal's sync wrote one of these keys a moment ago: found now
        with transaction.atomic():
            return outbox_services.enqueue(portal_id, None, commands)


def _plan(portal: Portal, lines: list[PbxLine], remote: dict[str, dict], held_elsewhere: set[str],
          result: LineSyncResult) -> list[tuple[PbxLine, outbox_services.NewCommand]]:
    """The commands that bring Bitrix24 in line (each with its line); what needs none is settled here."""
    planned: list[tuple[PbxLine, outbox_services.NewCommand]] = []
    housekeeping = packing.PRIORITY_HOUSEKEEPING
    for line in lines:
        there = remote.get(_digits(line.number))
        if line.removed_at is not None:
            if there is not None and line.number not in held_elsewhere:
                planned.append((line, outbox_services.NewCommand(
                    _delete_key(line.number), OutboxCommand.Kind.HOUSEKEEPING, LINE_DELETE,
                    {"NUMBER": there["NUMBER"]}, housekeeping)))
            else:
                _forget(line)
            continue
        name = display_name(line)  # the admin's name for it, else the PBX's
        if there is None:
            if line.bitrix_line_registered:  # deleted in Bitrix24 by hand: not there until added again
                PbxLine.objects.filter(pk=line.pk).update(bitrix_line_registered=False)
            planned.append((line, outbox_services.NewCommand(
                line_command_key(portal, line.number), OutboxCommand.Kind.LINE, LINE_ADD,
                line_add_params(line.number, name), housekeeping)))
        elif (there.get("NAME") or "") != name:
            planned.append((line, outbox_services.NewCommand(
                _update_key(line.number), OutboxCommand.Kind.HOUSEKEEPING, LINE_UPDATE,
                {"NUMBER": there["NUMBER"], "NAME": name}, housekeeping)))
        else:
            _registered(line)
    return planned


def _take_in(line: PbxLine, command: outbox_services.NewCommand, row: OutboxCommand,
             result: LineSyncResult) -> int | None:
    """Apply one command's outcome to its line; returns the row to mark taken in (None: not yet, or a call's)."""
    if row.status in _OPEN:
        _waits(result)
        return None
    error = outbox_errors.exception_of(row.error, row.method) if row.status == OutboxCommand.Status.FAILED else None
    mine = row.call_id is None  # a call's line add is that call's to take in
    if row.params != command.params and error is None:
        # An earlier run's command under this key, for other parameters (a rename since): the next run writes
        # this one's.
        _waits(result)
        return row.pk if mine else None
    if row.method == LINE_ADD and (error is None or line_already_exists(error)):
        result.added.append(line.number)
        _registered(line)
    elif row.method == LINE_UPDATE and error is None:
        result.renamed.append(line.number)
        _registered(line)
    elif row.method == LINE_DELETE and (error is None or line_not_found(error)):
        result.deleted.append(line.number)
        _forget(line)
    elif row.method == LINE_UPDATE and error is not None and line_not_found(error):
        # Deleted in Bitrix24 since the get listed it: the next run adds it.
        PbxLine.objects.filter(pk=line.pk).update(bitrix_line_registered=False, sync_error=str(error)[:500])
        result.complete = False
        result.error = str(error)
    else:
        assert error is not None
        if isinstance(error, _unavailable_errors()):
            PbxLine.objects.filter(pk=line.pk).update(sync_error=f"Bitrix24 unavailable: {error}"[:500])
        else:  # Bitrix24 refused this one line (a validation error): kept visible, the rest go on
            logger.warning("Bitrix24 refused line %s of connection %s: %s", line.number, line.connection_id, error)
            PbxLine.objects.filter(pk=line.pk).update(sync_error=str(error)[:500])
        result.complete = False
        result.error = str(error)
    return row.pk if mine else None


def _waits(result: LineSyncResult) -> LineSyncResult:
    result.complete = False
    result.error = result.error or _WAITING
    return result


def _failed(lines: list[PbxLine], result: LineSyncResult, exc: BaseException) -> LineSyncResult:
    logger.info("Bitrix24 line sync postponed: %s", exc)
    unavailable = isinstance(exc, _unavailable_errors())
    PbxLine.objects.filter(pk__in=[ln.pk for ln in lines]).update(
        sync_error=(f"Bitrix24 unavailable: {exc}" if unavailable else str(exc))[:500])
    result.complete = False
    result.error = str(exc)
    return result


def _registered(line: PbxLine) -> None:
    PbxLine.objects.filter(pk=line.pk, name=line.name, removed_at__isnull=True).update(
        bitrix_line_registered=True, sync_error=""
    )


def _forget(line: PbxLine) -> None:
    # Only if the PBX has not listed the number again meanwhile.
    PbxLine.objects.filter(pk=line.pk, removed_at__isnull=False).delete()
