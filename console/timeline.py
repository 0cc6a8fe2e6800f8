"""One call's story for the vendor: the portal admin's timeline of the call (``inportal.activity``), each
Bitrix24 request with its response (as the REST log holds them, redacted), and a plain answer to "did a card
pop, and if not, why"."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from b24client import redact
from calls.models import Call, DeadLetter, PbxEvent
from calls.sync.selectors import call_timeline as pbx_events_of
from calls.sync.selectors import rest_requests_of
from inportal.activity.timeline import call_timeline, unowned_extensions
from inportal.people import names_of
from portals.models import RestCallLog

SHOW = "telephony.externalcall.show"
REGISTER = "telephony.externalcall.register"


@dataclass
class TimelineItem:
    at: datetime
    source: str  # "pbx" | "bitrix24"
    title: str
    text: str = ""  # what the portal admin reads for this step (the in-portal timeline)
    ok: bool | None = None
    detail: Any = None
    response: Any = None


@dataclass
class CallStory:
    call: Call
    items: list[TimelineItem] = field(default_factory=list)
    rest: list[RestCallLog] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    card_verdict: str = ""
    card_shown_to: list[int] = field(default_factory=list)


def _shown_to(rest: list[RestCallLog]) -> list[int]:
    users: set[int] = set()
    for entry in rest:
        if entry.method.lower() == SHOW and not entry.error and (entry.status or 0) < 300:
            raw = (entry.request or {}).get("USER_ID")
            for user in raw if isinstance(raw, list) else [raw]:
                try:
                    users.add(int(user))
                except (TypeError, ValueError):
                    continue
    return sorted(users)


def rang_extensions(events: list[PbxEvent]) -> list[str]:
    """Extensions the PBX said rang or answered, in order."""
    seen: dict[str, None] = {}
    for event in events:
        payload = event.payload or {}
        if event.type == "call.ringing":
            for ext in payload.get("extensions") or []:
                seen[str(ext)] = None
        elif event.type == "call.answered" and payload.get("extension"):
            seen[str(payload["extension"])] = None
    return list(seen)


def card_verdict(call: Call, rest: list[RestCallLog], letters: list[DeadLetter], shown_to: list[int],
                 events: list[PbxEvent] | None = None) -> str:
    if shown_to:
        return f"Card shown to Bitrix24 user(s) {', '.join(map(str, shown_to))}."
    portal = call.portal
    if not portal.is_callable:
        return (f"No card: the portal cannot be called ({portal.get_status_display().lower()}"
                f"{': ' + portal.dead_reason if portal.dead_reason else ''}).")
    if call.status == Call.Status.IGNORED:
        return "No card: a call between extensions is not shown in Bitrix24."
    registered = any(e.method.lower() == REGISTER and not e.error for e in rest) or call.registered_at
    if not registered:
        reason = letters[0].reason if letters else (call.last_error or "not attempted yet")
        if call.status == Call.Status.WAITING_FOR_START:
            reason = "call.started has not arrived from the PBX"
        return f"No card: the call was never registered in Bitrix24 ({reason})."
    rang = rang_extensions(events or [])
    unmapped = unowned_extensions(call, events or [])
    if unmapped and not (set(rang) - set(unmapped)):
        return (f"No card: extension(s) {', '.join(unmapped)} rang but no Bitrix24 user has that extension "
                "(UF_PHONE_INNER or a connection override), so nobody could be shown the card.")
    if rang:
        ended = next((e for e in events or [] if e.type == "call.ended"), None)
        when = f" at {ended.occurred_at:%H:%M:%S}" if ended else ""
        return (f"No card: extension(s) {', '.join(rang)} rang, but the call had ended{when} by the time we "
                "could show the card (its events reached us together, or the sync was late: see the times).")
    return "No card: no agent's extension rang for this call (the PBX sent no call.ringing)."


def call_story(call: Call) -> CallStory:
    """The in-portal Activity timeline of the call (the portal admin's words), each Bitrix24 step with the
    request and response the REST log holds, plus the requests that timeline leaves out (not telephony.*)."""
    story = CallStory(call)
    story.rest = rest_requests_of(call)
    rows = {(row.created_at, row.method): row for row in story.rest}
    used: set[int] = set()  # the rows (by identity: a batch's commands come as rows of their own, unsaved)
    for entry in call_timeline(call, lambda users: names_of(call.portal, users)):
        row = rows.get((entry.at, (entry.detail or {}).get("method")))
        if row is not None:
            used.add(id(row))
            story.items.append(_rest_item(row, entry.text))
        else:
            # PBX payloads are shown redacted too: a recording URL may carry the PBX's credentials.
            story.items.append(TimelineItem(at=entry.at, source=entry.source, title=entry.text, ok=entry.ok,
                                            detail=redact.redact(entry.detail)))
    story.items += [_rest_item(row, "") for row in story.rest if id(row) not in used]
    story.items.sort(key=lambda item: (item.at is None, item.at or datetime.min.replace(tzinfo=UTC)))
    events = list(pbx_events_of(call))
    story.dead_letters = list(DeadLetter.objects.filter(call=call).order_by("-created_at"))
    story.card_shown_to = _shown_to(story.rest)
    story.card_verdict = card_verdict(call, story.rest, story.dead_letters, story.card_shown_to, events)
    return story


def _rest_item(row: RestCallLog, text: str) -> TimelineItem:
    return TimelineItem(at=row.created_at, source="bitrix24", title=f"{row.method} → {row.error or row.status}",
                        text=text, ok=not row.error and (row.status or 0) < 300, detail=row.request,
                        response=row.response)
