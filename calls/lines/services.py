"""The PBX's external numbers (``PUT …/lines``) and their mirror in Bitrix24 external lines.

``PUT`` stores the list (normalised to E.164 with the portal's default country) in one
transaction and answers at once: the ``200`` shows each line as it is (``registered_in_bitrix24``
false for a line Bitrix24 does not have yet). The Bitrix24 side is synchronised by a worker,
``calls.lines.tasks.sync_pbx_lines`` (queued by the view), never inside the request: a slow portal
must not hold the PBX's request. When Bitrix24 cannot be reached (down, rate-limited, tokens dead,
portal unpaid) the sync is retried later by the sweeper (``connections_with_unsynced_lines()``).

A line's add goes through the portal's outbox (``calls.outbox``) under one key per portal and number
(``line_command_key``), the key a call's reconciler writes its line add under too: whichever path comes
first writes the command, the other finds it, and the line is added once. The sync sends it with the
portal's other due commands and takes its outcome in; one still waiting for the portal's sender is taken
in by the next sync (the sweeper's).

The Bitrix24 line ``NUMBER`` is the E.164 form (``+74951234567``), which is what ``LINE_NUMBER``
must carry in ``telephony.externalCall.register``. A number the PBX stopped listing keeps its row
(``removed_at`` set) until Bitrix24 confirmed the delete, so a failed delete is retried, never
forgotten. A number that another connection of the same portal still lists is not deleted.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone
from rest_framework import serializers

import inputguard
from b24client import errors as b24errors
from calls.models import Call, OutboxCommand, PbxConnection, PbxLine, SeenLineNumber
from calls.outbox import errors as outbox_errors
from calls.outbox import packing
from calls.outbox import sender as outbox_sender
from calls.outbox import services as outbox_services
from calls.outbox.conf import outbox_settings
from calls.phones import InvalidPhoneNumber, normalize_strict
from calls.policy_epoch import forget_portal_facts
from calls.settings.selectors import display_name
from portals.errors import PortalUnavailable
from portals.models import Portal
from portals.services import bitrix24_client_for

logger = logging.getLogger(__name__)

MAX_LINES = 500


class LineSerializer(serializers.Serializer):
    number = serializers.CharField(max_length=64, help_text="Any format; stored as E.164 with the portal's country.")
    name = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class LineStateSerializer(serializers.Serializer):
    number = serializers.CharField(help_text="E.164")
    name = serializers.CharField()
    registered_in_bitrix24 = serializers.BooleanField(
        help_text="False while Bitrix24 does not yet show this line with this name (sync retried later)."
    )


def current_lines(connection: PbxConnection) -> list[dict[str, Any]]:
    return [
        {"number": line.number, "name": line.name, "registered_in_bitrix24": line.bitrix_line_registered}
        for line in PbxLine.objects.filter(connection=connection, removed_at__isnull=True).order_by("number")
    ]


def connections_with_unsynced_lines() -> list[int]:
    return list(
        PbxLine.objects.filter(connection__enabled=True)
        .exclude(bitrix_line_registered=True, removed_at__isnull=True)
        .values_list("connection_id", flat=True)
        .distinct()
    )


def validate_lines(data: Any, default_country: str) -> tuple[list[tuple[str, str]], dict[str, list[str]], str]:
    """(E.164 number, name) pairs, or field errors keyed ``"<index>.<field>"``."""
    if not isinstance(data, list):
        return [], {}, 'The body must be a JSON array of lines: [{"number": "+74951234567", "name": "Sales"}].'
    if len(data) > MAX_LINES:
        return [], {}, f"At most {MAX_LINES} lines; got {len(data)}."
    if poison := inputguard.find_poison(data):
        field, problem = poison
        return [], {field: [problem]}, f"Line {field.split('.')[0]} is invalid: {field}: {problem} Nothing was changed."
    lines: list[tuple[str, str]] = []
    errors: dict[str, list[str]] = {}
    seen: dict[str, int] = {}
    for index, item in enumerate(data):
        serializer = LineSerializer(data=item) if isinstance(item, dict) else None
        if serializer is None:
            errors[str(index)] = ["Each line must be a JSON object."]
            continue
        if not serializer.is_valid():
            for name, messages in serializer.errors.items():
                errors[f"{index}.{name}"] = [str(m) for m in messages]
            continue
        raw = serializer.validated_data["number"]
        try:
            number = normalize_strict(raw, default_country)
        except InvalidPhoneNumber:
            errors[f"{index}.number"] = [
                f"{raw!r} is not a valid phone number (numbers without a country code are read as {default_country})."
            ]
            continue
        if number in seen:
            errors[f"{index}.number"] = [f"{number} is listed twice (also line {seen[number]})."]
            continue
        seen[number] = index
        lines.append((number, serializer.validated_data["name"].strip()))
    if errors:
        first = next(iter(errors))
        return [], errors, f"Line {first.split('.')[0]} is invalid: {' '.join(errors[first])} Nothing was changed."
    return lines, {}, ""


def store_lines(connection: PbxConnection, lines: list[tuple[str, str]]) -> None:
    """Make the connection's active lines exactly ``lines``; call inside a transaction."""
    now = timezone.now()
    wanted = dict(lines)
    existing = {line.number: line for line in PbxLine.objects.select_for_update().filter(connection=connection)}
    for number, name in wanted.items():
        line = existing.get(number)
        if line is None:
            PbxLine.objects.create(connection=connection, number=number, name=name)
            continue
        if line.name != name or line.removed_at is not None:
            line.bitrix_line_registered = line.bitrix_line_registered and line.name == name
            line.name = name
            line.removed_at = None
            line.save(update_fields=["name", "removed_at", "bitrix_line_registered", "updated_at"])
    # Numbers the portal admin added on purpose stay until the admin removes them.
    if PbxLine.objects.filter(connection=connection, removed_at__isnull=True, added_by_admin=False).exclude(
            number__in=wanted).update(removed_at=now, updated_at=now):
        forget_portal_facts([connection.portal_id])  # no signal announces an UPDATE: no longer company lines



# --- Bitrix24 side --------------------------------------------------------------------------


@dataclass
class LineSyncResult:
    added: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    complete: bool = True
    error: str = ""


def _digits(number: Any) -> str:
    return re.sub(r"\D", "", str(number or ""))


def _bitrix_unavailable_errors() -> tuple[type[BaseException], ...]:
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

    Never raises for Bitrix24 being unavailable: the result says ``complete=False`` and the
    lines keep ``bitrix_line_registered=False`` / their ``removed_at`` rows for the retry.
    """

    connection = PbxConnection.objects.select_related("portal").get(pk=connection_id)
    result = LineSyncResult()
    unavailable = _bitrix_unavailable_errors()
    lines = list(PbxLine.objects.filter(connection=connection).select_related("settings"))
    try:
        client = bitrix24_client_for(connection.portal_id)
        remote_items = client.call("telephony.externalLine.get", {}).result or []
    except unavailable as exc:
        return _mark_failed(lines, result, exc)
    remote = {_digits(item.get("NUMBER")): item for item in remote_items if isinstance(item, dict)}
    held_elsewhere = set(
        PbxLine.objects.filter(connection__portal_id=connection.portal_id, removed_at__isnull=True)
        .exclude(connection=connection)
        .values_list("number", flat=True)
    )
    missing: list[PbxLine] = []
    for line in lines:
        try:
            if line.removed_at is None:
                if _digits(line.number) not in remote:
                    missing.append(line)
                    continue
                _sync_active(client, line, remote[_digits(line.number)], result)
            else:
                _sync_removed(client, line, remote.get(_digits(line.number)), held_elsewhere, result, b24errors)
        except unavailable as exc:
            return _mark_failed([ln for ln in lines if ln.pk and not _done(ln)], result, exc)
        except b24errors.Bitrix24Error as exc:
            # Bitrix24 refused this one line (a validation error): keep it visible, go on with the rest.
            logger.warning("Bitrix24 refused line %s of connection %s: %s", line.number, connection_id, exc)
            PbxLine.objects.filter(pk=line.pk).update(sync_error=str(exc)[:500])
            result.complete = False
            result.error = str(exc)
    if missing:
        _add_through_outbox(client, connection.portal, missing, result)
    return result


def _done(line: PbxLine) -> bool:
    return getattr(line, "_synced", False)


def _mark_failed(lines: list[PbxLine], result: LineSyncResult, exc: BaseException) -> LineSyncResult:
    logger.info("Bitrix24 line sync postponed: %s", exc)
    PbxLine.objects.filter(pk__in=[ln.pk for ln in lines]).update(sync_error=f"Bitrix24 unavailable: {exc}"[:500])
    result.complete = False
    result.error = str(exc)
    return result


LINE_ADD = "telephony.externalLine.add"


def line_add_params(number: str, name: str) -> dict[str, Any]:
    """The one way every path adds a company line (docs/bitrix24-contract.md §5.1): with ``CRM_AUTO_CREATE=Y``
    (outgoing calls on it create their CRM object)."""
    return {"NUMBER": number, "NAME": name, "CRM_AUTO_CREATE": "Y"}


def line_already_exists(exc: b24errors.Bitrix24Error) -> bool:
    """"Line already exists" (added by a concurrent sync a moment ago) counts as success."""
    return isinstance(exc, b24errors.InvalidRequest) and "already exists" in f"{exc.code} {exc.description}".lower()


def line_command_key(portal: Portal, number: str) -> str:
    """The outbox key of a line's add, one per portal and number, whichever path writes it. A reinstall
    starts with no lines (Bitrix24 drops an app's lines with the app): a new key."""
    installed = int(portal.installed_at.timestamp() * 1000) if portal.installed_at else 0
    return f"line:{installed}:{number}"


def _add_through_outbox(client: Any, portal: Portal, lines: list[PbxLine], result: LineSyncResult) -> None:
    """Write the lines' adds (or find those a call wrote), send the portal's due commands, take outcomes in."""
    keys = {line.pk: line_command_key(portal, line.number) for line in lines}
    commands = [outbox_services.NewCommand(keys[line.pk], OutboxCommand.Kind.LINE, LINE_ADD,
                                           line_add_params(line.number, display_name(line)),
                                           packing.PRIORITY_REGISTER) for line in lines]
    with transaction.atomic():
        rows = outbox_services.enqueue(portal.pk, None, commands)
    if any(r.status in (OutboxCommand.Status.PENDING, OutboxCommand.Status.SENDING) for r in rows.values()):
        outbox_sender.drain(portal.pk, max_requests=outbox_settings().inline_requests, client=client)
    outcomes = {r.key: r for r in OutboxCommand.objects.filter(pk__in=[r.pk for r in rows.values()])}
    taken_in: list[int] = []
    for line in lines:
        row = outcomes[keys[line.pk]]
        if row.status in (OutboxCommand.Status.DONE, OutboxCommand.Status.FAILED) and row.call_id is None:
            taken_in.append(row.pk)  # a call's own command is that call's to take in
        error = (outbox_errors.exception_of(row.error, row.method)
                 if row.status == OutboxCommand.Status.FAILED else None)
        if row.status == OutboxCommand.Status.DONE or (error is not None and line_already_exists(error)):
            result.added.append(line.number)
            _registered(line)
        elif error is not None:
            unavailable = isinstance(error, _bitrix_unavailable_errors())
            PbxLine.objects.filter(pk=line.pk).update(
                sync_error=(f"Bitrix24 unavailable: {error}" if unavailable else str(error))[:500])
            result.complete = False
            result.error = str(error)
        else:  # still waiting for the portal's sender
            result.complete = False
            result.error = "the line add waits behind the portal's other Bitrix24 commands"
    # Taken in: the next sync of a line that is still missing writes its add again (a retry).
    outbox_services.mark_applied(taken_in)


def _sync_active(client: Any, line: PbxLine, remote: dict, result: LineSyncResult) -> None:
    name = display_name(line)  # the admin's name for it, else the PBX's
    if (remote.get("NAME") or "") != name:
        client.call("telephony.externalLine.update", {"NUMBER": remote["NUMBER"], "NAME": name})
        result.renamed.append(line.number)
    _registered(line)


def _registered(line: PbxLine) -> None:
    PbxLine.objects.filter(pk=line.pk, name=line.name, removed_at__isnull=True).update(
        bitrix_line_registered=True, sync_error=""
    )
    line._synced = True  # type: ignore[attr-defined]


def _sync_removed(
    client: Any, line: PbxLine, remote: dict | None, held_elsewhere: set[str], result: LineSyncResult, b24errors: Any
) -> None:
    if remote is not None and line.number not in held_elsewhere:
        try:
            client.call("telephony.externalLine.delete", {"NUMBER": remote["NUMBER"]})
        except b24errors.InvalidRequest as exc:
            if "could not find" not in str(exc).lower():
                raise
        result.deleted.append(line.number)
    # Only if the PBX has not listed the number again meanwhile.
    PbxLine.objects.filter(pk=line.pk, removed_at__isnull=False).delete()
    line._synced = True  # type: ignore[attr-defined]


def record_seen_line(call: Call, number: str) -> None:
    """Remember that ``call`` came with ``number`` as its line although no PBX of the portal declared it."""
    if not number or call.connection_id is None:
        return
    now = timezone.now()
    seen, created = SeenLineNumber.objects.get_or_create(
        connection_id=call.connection_id, number=number[:64],
        defaults={"first_seen_at": now, "last_seen_at": now, "last_call": call},
    )
    if not created:
        SeenLineNumber.objects.filter(pk=seen.pk).update(last_seen_at=now, last_call=call)
    logger.info("call %s: line %s was never declared by the PBX; not added to Bitrix24, recorded as seen",
                call.pk, number)
