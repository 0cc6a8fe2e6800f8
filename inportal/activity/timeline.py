"""One call's story in plain words, from what the connector stores about it.

Sources, merged by time: the PBX's events (``PbxEvent``), what was sent to Bitrix24 and its answer
(the REST log rows that name the call), the originate command for click-to-call and callbacks, the
call's own bookkeeping (cards shown, recording, errors, extensions nobody owns) and its dead letters.
It answers "why was this call not registered / why did the card not open". A selector: the vendor's
operator console reuses it (``call_timeline(call, names_for)``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Q
from django.utils.translation import gettext as _

from calls.models import Call, DeadLetter, ExtensionDirectory, ExtensionOverride, OriginateCommand, PbxEvent
from calls.sync.selectors import call_timeline as pbx_events_of
from calls.sync.selectors import rest_requests_of
from portals.models import RestCallLog

PBX, BITRIX24, CARD, RECORDING, PROBLEM, CONNECTOR = "pbx", "bitrix24", "card", "recording", "problem", "connector"


@dataclass
class Entry:
    at: datetime | None
    source: str  # pbx | bitrix24 | card | recording | problem | connector
    text: str
    ok: bool = True
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat() if self.at else None
        return data


Names = Callable[[int], str]
NamesFor = Callable[[set[int]], dict[int, str]]


def _disposition(value: str) -> str:
    return {
        "answered": _("answered"), "no_answer": _("not answered"), "busy": _("busy"), "declined": _("declined"),
        "cancelled": _("cancelled by the caller"), "failed": _("failed"), "unavailable": _("unavailable"),
        "invalid_number": _("invalid number"), "forbidden": _("forbidden"), "no_funds": _("no funds"),
        "blocked": _("blocked"),
    }.get(value, value)


def _pbx_entry(event: PbxEvent) -> Entry:
    data = event.payload if isinstance(event.payload, dict) else {}
    kind = event.type
    if kind == "call.started":
        if data.get("direction") == "outbound":
            text = _("The PBX started an outgoing call from extension %(extension)s to %(client)s.") % {
                "extension": data.get("extension") or "?", "client": data.get("client_number") or _("a hidden number")}
        else:
            text = _("The PBX received a call from %(client)s on line %(line)s.") % {
                "client": data.get("client_number") or _("a hidden number"), "line": data.get("line_number") or "?"}
    elif kind == "call.ringing":
        text = _("Ringing: %(extensions)s.") % {"extensions": ", ".join(map(str, data.get("extensions") or [])) or "—"}
    elif kind == "call.answered":
        text = _("Answered by extension %(extension)s.") % {"extension": data.get("extension") or "?"}
    elif kind == "call.transferred":
        text = _("Transferred from extension %(from)s to %(to)s.") % {
            "from": data.get("from_extension") or "?", "to": data.get("to_extension") or "?"}
    elif kind == "call.ended":
        text = _("The call ended: %(how)s, %(seconds)s s of talk.") % {
            "how": _disposition(str(data.get("disposition") or "")), "seconds": data.get("talk_seconds", 0)}
    elif kind == "call.recording_ready":
        text = _("The PBX has the recording ready.")
    else:
        text = kind
    ok = event.status != PbxEvent.Status.FAILED
    detail = {"type": kind, "event_id": event.event_id, "received_at": event.received_at.isoformat()}
    if event.error:
        detail["error"] = event.error[:500]
    return Entry(event.occurred_at, PBX, text, ok, detail)


def _answer_text(row: RestCallLog) -> str:
    return row.error or (f"HTTP {row.status}" if row.status else _("no answer"))


def _bitrix_entry(row: RestCallLog, names: Names) -> Entry:
    method = row.method.lower()
    request = row.request if isinstance(row.request, dict) else {}
    failed = bool(row.error) or row.status != 200
    users = _user_ids(request)
    who = ", ".join(names(u) for u in users) if users else _("nobody")
    detail = {"method": row.method, "status": row.status, "error": row.error, "duration_ms": row.duration_ms}
    if method.endswith("externalcall.register"):
        text = (_("Bitrix24 refused to register the call (%(error)s).") % {"error": _answer_text(row)} if failed
                else _("Registered in Bitrix24 for %(user)s.") % {"user": who})
    elif method.endswith("externalcall.show"):
        text = (_("Could not show the card (%(error)s).") % {"error": _answer_text(row)} if failed
                else _("The call card was shown to %(user)s.") % {"user": who})
        return Entry(row.created_at, CARD, text, not failed, detail)
    elif method.endswith("externalcall.hide"):
        text = (_("Could not hide the card (%(error)s).") % {"error": _answer_text(row)} if failed
                else _("The call card was hidden from %(user)s.") % {"user": who})
        return Entry(row.created_at, CARD, text, not failed, detail)
    elif method.endswith("externalcall.finish"):
        text = (_("Bitrix24 refused to finish the call (%(error)s).") % {"error": _answer_text(row)} if failed
                else _("Finished in Bitrix24 for %(user)s.") % {"user": who})
    elif method.endswith("externalcall.attachrecord"):
        text = (_("Bitrix24 refused the recording (%(error)s).") % {"error": _answer_text(row)} if failed
                else _("The recording was sent to Bitrix24."))
        return Entry(row.created_at, RECORDING, text, not failed, detail)
    else:
        text = (_("%(method)s failed (%(error)s).") if failed else _("%(method)s done.")) % {
            "method": row.method, "error": _answer_text(row)}
    return Entry(row.created_at, BITRIX24, text, not failed, detail)


def _user_ids(request: Any) -> list[int]:
    """``USER_ID`` of a request: one id (register, finish) or a list (show, hide)."""
    raw = request.get("USER_ID") if isinstance(request, dict) else None
    values = raw if isinstance(raw, list) else [raw]
    return [int(v) for v in values if str(v or "").isdigit()]


def _originate_entries(call: Call) -> list[Entry]:
    command = OriginateCommand.objects.filter(call=call).first()
    if command is None:
        return []
    asked = _("The connector asked the PBX to place the call (extension %(extension)s → %(client)s).") % {
        "extension": (command.body or {}).get("extension") or "?", "client": (command.body or {}).get("client_number") or "?"}
    entries = [Entry(command.created_at, CONNECTOR, asked, True, {"request_id": command.request_id})]
    outcome = {
        OriginateCommand.Status.ACCEPTED: (_("The PBX accepted the command."), True),
        OriginateCommand.Status.STARTED: (_("The PBX placed the call."), True),
        OriginateCommand.Status.REFUSED: (_("The PBX refused the command: %(detail)s") % {"detail": command.detail}, False),
        OriginateCommand.Status.UNREACHABLE: (_("The PBX did not answer the command: %(detail)s") % {"detail": command.detail},
                                              False),
        OriginateCommand.Status.EXPIRED: (_("The PBX accepted the command but never started the call."), False),
    }.get(command.status)
    if outcome is not None:
        entries.append(Entry(command.finished_at or command.claimed_at or command.created_at, CONNECTOR, outcome[0],
                             outcome[1], {"status": command.status, "http_status": command.http_status}))
    return entries


def _extensions_of(events: list[PbxEvent]) -> set[str]:
    found: set[str] = set()
    for event in events:
        data = event.payload if isinstance(event.payload, dict) else {}
        if event.type == "call.started" and data.get("direction") != "outbound":
            continue  # an inbound call's "extension" is only a hint of the first target
        for key in ("extension", "from_extension", "to_extension"):
            if data.get(key):
                found.add(str(data[key]).strip())
        found.update(str(ext).strip() for ext in data.get("extensions") or [])
    return found


def unowned_extensions(call: Call, events: list[PbxEvent]) -> list[str]:
    """Extensions this call rang or reached that map to no Bitrix24 user (as the connector knows them now)."""
    directory = ExtensionDirectory.objects.filter(portal_id=call.portal_id).first()
    owned = set((directory.users_by_extension if directory else {}) or {})
    if call.connection_id:
        owned |= set(ExtensionOverride.objects.filter(connection_id=call.connection_id)
                     .values_list("extension", flat=True))
    return sorted((_extensions_of(events) - owned) | set(call.unmapped_extensions or []))


def _bookkeeping(call: Call, events: list[PbxEvent]) -> list[Entry]:
    entries: list[Entry] = []
    when = call.updated_at
    if call.status == Call.Status.IGNORED:
        entries.append(Entry(call.ended_at or when, CONNECTOR,
                             _("A call between extensions: not registered in Bitrix24 on purpose.")))
    unowned = unowned_extensions(call, events) if call.status != Call.Status.IGNORED else []
    if unowned:
        entries.append(Entry(call.started_at or when, PROBLEM,
                             _("No Bitrix24 user has extension(s) %(extensions)s, so no card opened for them. Give "
                               "the employee this extension (Employees page).")
                             % {"extensions": ", ".join(unowned)}, False, {"extensions": unowned}))
    if call.forced_end:
        entries.append(Entry(call.ended_at or when, PROBLEM, _("The connector ended the call as failed: %(reason)s")
                             % {"reason": (call.forced_end or {}).get("reason") or "?"}, False))
    if call.recording_attached_at:
        entries.append(Entry(call.recording_attached_at, RECORDING, _("The recording is attached to the call in "
                                                                        "Bitrix24.")))
    elif call.recording_error:
        entries.append(Entry(when, RECORDING, _("The recording could not be attached: %(error)s")
                             % {"error": call.recording_error[:300]}, False))
    if call.last_error and call.status in (Call.Status.PENDING, Call.Status.LIVE):
        entries.append(Entry(call.failing_since or when, PROBLEM, _("Bitrix24 keeps failing (%(error)s); the next try "
                                                                     "is scheduled.") % {"error": call.last_error[:300]},
                             False, {"next_attempt_at": call.next_attempt_at.isoformat() if call.next_attempt_at else None}))
    for letter in DeadLetter.objects.filter(Q(call=call) | Q(pbx_event__connection_id=call.connection_id,
                                                                 pbx_event__call_id=call.pbx_call_id or "")):
        text = _("Could not be delivered: %(reason)s.") % {"reason": letter.reason}
        if letter.resolved_at:
            text = _("Delivery was retried (%(reason)s).") % {"reason": letter.reason}
        entries.append(Entry(letter.created_at, PROBLEM, text, letter.resolved_at is not None,
                             {"detail": letter.detail[:500], "open": letter.resolved_at is None}))
    return entries


def call_timeline(call: Call, names_for: NamesFor) -> list[Entry]:
    """``names_for(user_ids) -> {id: name}`` is asked once, for the users the requests name."""
    requests = [r for r in rest_requests_of(call) if r.method.lower().startswith("telephony.")]
    users = {u for r in requests for u in _user_ids(r.request)}
    named = names_for(users) if users else {}

    def names(user_id: int) -> str:
        return named.get(user_id, f"#{user_id}")

    events = list(pbx_events_of(call))
    entries = [_pbx_entry(e) for e in events]
    entries += [_bitrix_entry(row, names) for row in requests]
    entries += _originate_entries(call)
    entries += _bookkeeping(call, events)
    return sorted(entries, key=lambda e: (e.at is None, e.at or datetime.min))
