"""Who takes a call from a client: the pure rules (no Django, no I/O) behind ``/route`` and callbacks.

Bitrix24's ``telephony.externalCall.searchCrmEntities`` returns the CRM objects that own a phone
number, "sorted by internal priority" (Bitrix24 recommends taking the first), each with its
responsible user, that user's extension and their working-day status (TIMEMAN_STATUS). The chain,
the same for an incoming call and a CRM-form callback:

* Walk the objects in Bitrix24's order; take the first whose responsible user has an extension on
  this connection (our extension map first, then the ``USER_PHONE_INNER`` Bitrix24 returned) and is
  at work.
* "At work" means TIMEMAN_STATUS ``OPENED``. ``NOT_INSTALLED`` (the portal does not track working
  time) or no status at all count as at work as well: otherwise a portal without time tracking
  could never route to anyone. CLOSED, PAUSED, EXPIRED and UNAVAILABLE are skipped.
* Then the agents named for this kind of call, in order, if they have an extension (a callback:
  the line's callback agent, then the portal's; an incoming call names none).
* Nobody qualifies: the line's default (an extension, a queue or ring group, and/or a user);
  the CRM object found is still reported so the PBX can show it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import phonenumbers

CRM_RESPONSIBLE = "crm_responsible"
NAMED_AGENT = "named_agent"
LINE_DEFAULT = "line_default"
NONE = "none"

AT_WORK_STATUSES = frozenset({"OPENED", "NOT_INSTALLED", ""})
_ENTITY_TYPES = frozenset({"CONTACT", "COMPANY", "LEAD", "DEAL"})


@dataclass(frozen=True)
class CrmCandidate:
    """One CRM object that owns the number, reduced to what routing needs (this is what is cached)."""

    entity_type: str
    entity_id: int
    responsible_id: int | None
    timeman_status: str
    phone_inner: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CrmCandidate:
        return cls(**data)


@dataclass(frozen=True)
class RouteChoice:
    extension: str | None
    user_id: int | None
    reason: str
    crm_entity: tuple[str, int] | None

    def as_response(self) -> dict[str, Any]:
        entity = {"type": self.crm_entity[0], "id": self.crm_entity[1]} if self.crm_entity else None
        return {"extension": self.extension, "user_id": self.user_id, "reason": self.reason, "crm_entity": entity}


@dataclass(frozen=True)
class LineDefault:
    extension: str | None = None
    user_id: int | None = None


def _int(value: Any) -> int | None:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _text(value: Any) -> str:
    return str(value).strip() if value not in (None, False) else ""


def candidates_from_search(result: Any) -> list[CrmCandidate]:
    """Parse a ``searchCrmEntities`` result (tolerating Bitrix24's string ids and null fields)."""
    if not isinstance(result, list):
        return []
    found: list[CrmCandidate] = []
    for item in result:
        if not isinstance(item, dict):
            continue
        entity_type = _text(item.get("CRM_ENTITY_TYPE")).upper()
        entity_id = _int(item.get("CRM_ENTITY_ID"))
        if entity_type not in _ENTITY_TYPES or entity_id is None:
            continue
        assigned = item.get("ASSIGNED_BY") if isinstance(item.get("ASSIGNED_BY"), dict) else {}
        responsible = _int(item.get("ASSIGNED_BY_ID")) or _int(assigned.get("ID"))
        found.append(
            CrmCandidate(
                entity_type=entity_type,
                entity_id=entity_id,
                responsible_id=responsible,
                timeman_status=_text(assigned.get("TIMEMAN_STATUS")).upper(),
                phone_inner=_text(assigned.get("USER_PHONE_INNER")),
            )
        )
    return found


def merge_candidates(groups: Iterable[list[CrmCandidate]]) -> list[CrmCandidate]:
    """Results of searches for several spellings of one number, in order, without repeats."""
    seen: set[tuple[str, int]] = set()
    merged: list[CrmCandidate] = []
    for group in groups:
        for candidate in group:
            key = (candidate.entity_type, candidate.entity_id)
            if key not in seen:
                seen.add(key)
                merged.append(candidate)
    return merged


def search_spellings(e164: str, default_country: str) -> list[str]:
    """The spellings of a number to ask Bitrix24 about, most likely first.

    Bitrix24 normalises numbers in its own duplicate index, but numbers typed into the CRM without a
    country code are indexed as typed ("84951234567", "4951234567"); asking for the national forms
    too finds them. All spellings go in one ``batch`` request, so this costs no extra round trip.
    """
    spellings = [e164]
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return spellings
    region = phonenumbers.region_code_for_number(parsed)
    if region and region == (default_country or "").upper():
        national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
        national_digits = "".join(ch for ch in national if ch.isdigit())
        significant = phonenumbers.national_significant_number(parsed)
        for spelling in (national_digits, significant):
            if spelling and spelling not in spellings:
                spellings.append(spelling)
    return spellings


def choose(
    candidates: Iterable[CrmCandidate],
    extension_of: Callable[[int], str | None],
    line_default: LineDefault,
    user_of_extension: Callable[[str], int | None],
    named_agents: Iterable[int | None] = (),
) -> RouteChoice:
    """Apply the chain in the module docstring. ``extension_of(user_id)`` reads our extension map."""
    candidates = list(candidates)
    first_entity = (candidates[0].entity_type, candidates[0].entity_id) if candidates else None
    for candidate in candidates:
        if candidate.responsible_id is None or candidate.timeman_status not in AT_WORK_STATUSES:
            continue
        extension = extension_of(candidate.responsible_id) or candidate.phone_inner or None
        if extension:
            return RouteChoice(
                extension=extension,
                user_id=candidate.responsible_id,
                reason=CRM_RESPONSIBLE,
                crm_entity=(candidate.entity_type, candidate.entity_id),
            )
    for user_id in named_agents:
        extension = extension_of(user_id) if user_id else None
        if extension:
            return RouteChoice(extension=extension, user_id=user_id, reason=NAMED_AGENT, crm_entity=first_entity)
    extension = line_default.extension or (
        extension_of(line_default.user_id) if line_default.user_id is not None else None
    )
    user_id = line_default.user_id or (user_of_extension(extension) if extension else None)
    if extension or user_id:
        return RouteChoice(extension=extension or None, user_id=user_id, reason=LINE_DEFAULT, crm_entity=first_entity)
    return RouteChoice(extension=None, user_id=None, reason=NONE, crm_entity=first_entity)
