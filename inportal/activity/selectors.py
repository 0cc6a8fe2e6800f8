"""The portal's calls for the Activity page: search by number (any spelling) or id, the undelivered ones."""

from __future__ import annotations

import re
import uuid
from typing import Any

from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _

from calls import phones
from calls.models import Call, DeadLetter, PbxEvent
from portals.models import Portal

PAGE_SIZE = 25
_DIGITS = re.compile(r"\D")


def _number_match(q: str, portal: Portal) -> Q | None:
    digits = _DIGITS.sub("", q)
    if len(digits) < 3:
        return None
    e164 = phones.normalize(q, portal.default_country)
    match = Q(client_number=e164) | Q(line_number=e164)
    # Part of a number ("1234567", "495 123"): the stored E.164 form contains the digits as typed.
    if len(digits) >= 5:
        match |= Q(client_number__contains=digits) | Q(line_number__contains=digits)
    return match


def search_calls(portal: Portal, q: str = "") -> QuerySet[Call]:
    calls = Call.objects.filter(portal=portal).select_related("connection").order_by("-created_at", "-id")
    q = (q or "").strip()
    if not q:
        return calls
    match = Q(pbx_call_id=q) | Q(b24_call_id=q)
    try:
        match |= Q(uuid=uuid.UUID(q))
    except ValueError:
        pass
    by_number = _number_match(q, portal)
    if by_number is not None:
        match |= by_number
    return calls.filter(match)


def call_of(portal: Portal, call_id: str) -> Call | None:
    try:
        key = uuid.UUID(str(call_id))
    except ValueError:
        return None
    return Call.objects.filter(portal=portal, uuid=key).select_related("connection", "portal").first()


def status_text(call: Call) -> str:
    return {
        Call.Status.NEW: _("Waiting for the PBX to place the call"),
        Call.Status.WAITING_FOR_START: _("Waiting for the PBX to report the call"),
        Call.Status.PENDING: _("Being sent to Bitrix24"),
        Call.Status.LIVE: _("In progress"),
        Call.Status.DONE: _("In Bitrix24"),
        Call.Status.IGNORED: _("Between extensions: not for Bitrix24"),
        Call.Status.DEAD: _("Not delivered"),
    }.get(call.status, call.status)


def user_of(call: Call) -> int | None:
    """Who has the call in Bitrix24: the user it was finished for (the answering agent, the missed-call
    owner), else the one it was registered to."""
    finished_for = (call.finish_params or {}).get("USER_ID")
    if str(finished_for or "").isdigit():
        return int(finished_for)
    return call.b24_user_id


def call_row(call: Call, names: dict[int, str]) -> dict[str, Any]:
    user_id = user_of(call)
    return {
        "id": str(call.uuid),
        "origin": call.origin,
        "direction": call.direction or ("outbound" if call.origin != Call.Origin.PBX else ""),
        "client_number": call.client_number,
        "line_number": call.line_number,
        "started_at": call.started_at,
        "ended_at": call.ended_at,
        "status": call.status,
        "status_text": status_text(call),
        "answered_by": call.answered_by,
        "user": {"id": user_id, "name": names.get(user_id, f"#{user_id}")} if user_id else None,
        "registered": call.b24_call_id is not None,
        "finished": call.finished_at is not None,
        "recording": "attached" if call.recording_attached_at else ("failed" if call.recording_error else "none"),
        "pbx_call_id": call.pbx_call_id,
        "connection": call.connection.name if call.connection_id else None,
        "created_at": call.created_at,
    }


def undelivered(portal: Portal) -> list[DeadLetter]:
    return list(DeadLetter.objects.filter(portal=portal, resolved_at=None).select_related("call", "pbx_event")
                .order_by("-created_at", "-id"))


def call_of_letter(letter: DeadLetter) -> Call | None:
    if letter.call_id is not None:
        return letter.call
    event: PbxEvent | None = letter.pbx_event
    if event is None:
        return None
    return Call.objects.filter(connection_id=event.connection_id, pbx_call_id=event.call_id).first()
