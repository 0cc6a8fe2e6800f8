"""The PBX's external numbers (``PUT …/lines``): validated, normalised to E.164 with the portal's default
country and stored in one transaction; the request answers at once (``registered_in_bitrix24`` false for a
line Bitrix24 does not have yet). Their mirror in Bitrix24 is ``calls.lines.bitrix24_sync``, run by a worker.

A number the PBX stopped listing keeps its row (``removed_at`` set) until Bitrix24 confirmed the delete, so a
failed delete is retried, never forgotten.
"""

from __future__ import annotations

import logging
from typing import Any

from django.utils import timezone
from rest_framework import serializers

import inputguard
from calls.models import Call, PbxConnection, PbxLine, SeenLineNumber
from calls.phones import InvalidPhoneNumber, normalize_strict
from calls.policy_epoch import forget_portal_facts

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
