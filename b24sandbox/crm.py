# ruff: noqa: RUF001  -- Cyrillic names and titles in the demo data are intentional
"""The CRM slice of a sandbox portal: contacts, companies and leads with phones, and call activities.

Only what telephony needs is modelled: entities with raw phone strings in the formats people really type,
their responsible user (``assigned_by_id``), matching by phone the way Bitrix24 does, lead auto-creation for
``CRM_CREATE`` and the ``VOXIMPLANT_CALL`` activity that ``telephony.externalcall.finish`` creates.

Phone matching follows Bitrix24's ``DuplicateCommunicationCriterion::normalizePhone`` → ``NormalizePhone($v, 1)``:
drop everything but digits (and ``#*,;``), then for numbers of 10+ characters strip an ``00``/``011``
international prefix, turn a leading trunk ``8`` into ``7`` (Russia) and drop a leading ``0``. Two numbers
match when their normalised forms are equal, so ``8 (495) 123-45-67`` matches ``+74951234567`` but
``(415) 555-0100`` does not match ``+1 415 555 0100`` (no country code to recover) — as on a real portal.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from random import Random
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from b24sandbox.state import Portal, User

CONTACT = "CONTACT"
COMPANY = "COMPANY"
LEAD = "LEAD"
ENTITY_TYPES = (CONTACT, COMPANY, LEAD)

# Order in which the call card picks its primary entity (contacts and companies before leads).
PRIMARY_ORDER = (CONTACT, COMPANY, LEAD)
# Order of telephony.externalcall.searchCrmEntities results (Bitrix24 lists leads before companies there).
SEARCH_ORDER = (CONTACT, LEAD, COMPANY)

_NON_PHONE_CHARS = re.compile(r"[^0-9#*,;]")
_NON_DIGIT_CHARS = re.compile(r"[^0-9#*]")


def normalize_phone(value: Any) -> str:
    """Bitrix24's CRM phone key for ``value`` ("" when nothing phone-like is left)."""
    if not isinstance(value, str) or value == "":
        return ""
    number = value
    if len(number) >= 10 and number.startswith("+8"):
        # "+86 …" would otherwise read as a Russian trunk "8": treat the plus as an international prefix.
        number = "00" + number[1:]
    number = _NON_PHONE_CHARS.sub("", number)
    if len(number) >= 10:
        if number[:2] in ("80", "81", "82"):
            pass  # Russian long-distance "8-10…" style prefixes are kept as typed
        elif number.startswith("00"):
            number = number[2:]
        elif number.startswith("011"):
            number = number[3:]
        elif number.startswith("8"):
            number = "7" + number[1:]
        elif number.startswith("0"):
            number = number[1:]
    if number:
        return number
    return _NON_DIGIT_CHARS.sub("", value)


class LeadCreationError(Exception):
    """Lead auto-creation failed; the message goes to ``LEAD_CREATION_ERROR`` of the register result."""


@dataclass
class CrmPhone:
    value: str  # exactly as stored in the CRM ("8 (495) 123-45-67")
    value_type: str = "WORK"  # WORK | MOBILE | HOME | OTHER …

    @property
    def normalized(self) -> str:
        return normalize_phone(self.value)


@dataclass
class CrmEntity:
    entity_type: str  # CONTACT | COMPANY | LEAD
    id: int
    assigned_by_id: int
    phones: list[CrmPhone] = field(default_factory=list)
    name: str = ""
    last_name: str = ""
    title: str = ""  # company name, or the lead's title
    source_id: str = ""
    created_by_call: str | None = None  # CALL_ID when auto-created by telephony
    created_at: float | None = None

    @property
    def display_name(self) -> str:
        """What Bitrix24 shows as the entity's NAME (full name for people, title for companies)."""
        full = " ".join(part for part in (self.name, self.last_name) if part)
        if self.entity_type == COMPANY:
            return self.title
        if self.entity_type == LEAD and not full:
            return self.title
        return full

    def has_phone(self, normalized: str) -> bool:
        return bool(normalized) and any(p.normalized == normalized for p in self.phones)

    def to_dict(self) -> dict[str, Any]:
        return {
            "entity_type": self.entity_type,
            "id": self.id,
            "name": self.display_name,
            "assigned_by_id": self.assigned_by_id,
            "phones": [{"value": p.value, "value_type": p.value_type} for p in self.phones],
            "source_id": self.source_id,
            "created_by_call": self.created_by_call,
        }


@dataclass
class CallActivity:
    """The CRM "call" activity (PROVIDER_ID ``VOXIMPLANT_CALL``) that finishing an external call creates."""

    id: int
    call_id: str
    owner_type: str
    owner_id: int
    responsible_id: int
    direction: int  # 1 incoming, 2 outgoing (CCrmActivityDirection)
    subject: str
    duration: int
    status_code: str
    completed: bool = True
    provider_id: str = "VOXIMPLANT_CALL"
    provider_type_id: str = "CALL"
    record_file_ids: list[int] = field(default_factory=list)

    @property
    def origin_id(self) -> str:
        return "VI_" + self.call_id

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "call_id": self.call_id,
            "origin_id": self.origin_id,
            "provider_id": self.provider_id,
            "provider_type_id": self.provider_type_id,
            "owner_type": self.owner_type,
            "owner_id": self.owner_id,
            "responsible_id": self.responsible_id,
            "direction": self.direction,
            "subject": self.subject,
            "duration": self.duration,
            "status_code": self.status_code,
            "completed": self.completed,
            "record_file_ids": list(self.record_file_ids),
        }


PhoneInput = str | tuple[str, str] | CrmPhone


def _phones(values: Iterable[PhoneInput]) -> list[CrmPhone]:
    result: list[CrmPhone] = []
    for value in values:
        if isinstance(value, CrmPhone):
            result.append(value)
        elif isinstance(value, tuple):
            result.append(CrmPhone(value[0], value[1]))
        else:
            result.append(CrmPhone(value))
    return result


@dataclass
class CrmState:
    contacts: dict[int, CrmEntity] = field(default_factory=dict)
    companies: dict[int, CrmEntity] = field(default_factory=dict)
    leads: dict[int, CrmEntity] = field(default_factory=dict)
    activities: dict[int, CallActivity] = field(default_factory=dict)
    # When set, lead auto-creation fails and register returns this text as LEAD_CREATION_ERROR
    # (observed on real portals: "Lead creation is disabled for local users").
    lead_creation_error: str | None = None
    crm_installed: bool = True  # False → searchCrmEntities answers "CRM is not installed."
    next_ids: dict[str, int] = field(default_factory=lambda: {CONTACT: 1, COMPANY: 1, LEAD: 1, "ACTIVITY": 1})
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    def _table(self, entity_type: str) -> dict[int, CrmEntity]:
        tables = {CONTACT: self.contacts, COMPANY: self.companies, LEAD: self.leads}
        try:
            return tables[entity_type]
        except KeyError:
            raise ValueError(f"unknown CRM entity type {entity_type!r}") from None

    def _add(self, entity: CrmEntity) -> CrmEntity:
        with self.lock:
            table = self._table(entity.entity_type)
            if entity.id <= 0:
                entity.id = self.next_ids[entity.entity_type]
            if entity.id in table:
                raise ValueError(f"{entity.entity_type} {entity.id} already exists")
            table[entity.id] = entity
            self.next_ids[entity.entity_type] = max(self.next_ids[entity.entity_type], entity.id + 1)
            return entity

    def add_contact(
        self,
        name: str,
        last_name: str = "",
        *,
        phones: Iterable[PhoneInput] = (),
        assigned_by_id: int = 1,
        id: int = 0,
    ) -> CrmEntity:
        return self._add(
            CrmEntity(CONTACT, id, assigned_by_id, _phones(phones), name=name, last_name=last_name)
        )

    def add_company(
        self, title: str, *, phones: Iterable[PhoneInput] = (), assigned_by_id: int = 1, id: int = 0
    ) -> CrmEntity:
        return self._add(CrmEntity(COMPANY, id, assigned_by_id, _phones(phones), title=title))

    def add_lead(
        self,
        title: str,
        *,
        phones: Iterable[PhoneInput] = (),
        assigned_by_id: int = 1,
        name: str = "",
        last_name: str = "",
        source_id: str = "",
        created_by_call: str | None = None,
        id: int = 0,
        created_at: float | None = None,
    ) -> CrmEntity:
        return self._add(
            CrmEntity(
                LEAD,
                id,
                assigned_by_id,
                _phones(phones),
                name=name,
                last_name=last_name,
                title=title,
                source_id=source_id,
                created_by_call=created_by_call,
                created_at=created_at,
            )
        )

    def get(self, entity_type: str, entity_id: int) -> CrmEntity | None:
        if entity_type not in ENTITY_TYPES:
            return None
        return self._table(entity_type).get(int(entity_id))

    def entities(self) -> list[CrmEntity]:
        return [*self.contacts.values(), *self.companies.values(), *self.leads.values()]

    def find_by_phone(self, phone: Any, order: tuple[str, ...] = PRIMARY_ORDER) -> list[CrmEntity]:
        """Entities with a phone matching ``phone`` after normalisation, grouped by type in ``order``,
        oldest (lowest ID) first within a type."""
        key = normalize_phone(phone if isinstance(phone, str) else str(phone or ""))
        if not key:
            return []
        with self.lock:
            found: list[CrmEntity] = []
            for entity_type in order:
                table = self._table(entity_type)
                found.extend(table[i] for i in sorted(table) if table[i].has_phone(key))
            return found

    def create_lead_for_call(
        self,
        *,
        call_id: str,
        phone: str,
        assigned_by_id: int,
        incoming: bool,
        source_id: str | None,
        now: float,
    ) -> CrmEntity:
        """What ``CRM_CREATE=1`` does when nothing matched: a new lead with the caller's number."""
        if self.lead_creation_error:
            raise LeadCreationError(self.lead_creation_error)
        title = f"Incoming call {phone}" if incoming else f"Outgoing call {phone}"
        return self.add_lead(
            title,
            phones=[(phone, "WORK")],
            assigned_by_id=assigned_by_id,
            source_id=source_id or "CALL",
            created_by_call=call_id,
            created_at=now,
        )

    def add_call_activity(
        self,
        *,
        call_id: str,
        owner_type: str,
        owner_id: int,
        responsible_id: int,
        incoming: bool,
        phone: str,
        duration: int,
        status_code: str,
    ) -> CallActivity:
        with self.lock:
            activity_id = self.next_ids["ACTIVITY"]
            self.next_ids["ACTIVITY"] = activity_id + 1
            subject = f"Incoming call from {phone}" if incoming else f"Outgoing call to {phone}"
            activity = CallActivity(
                id=activity_id,
                call_id=call_id,
                owner_type=owner_type,
                owner_id=owner_id,
                responsible_id=responsible_id,
                direction=1 if incoming else 2,
                subject=subject,
                duration=duration,
                status_code=status_code,
            )
            self.activities[activity_id] = activity
            return activity

    def activity_for_call(self, call_id: str) -> CallActivity | None:
        for activity in self.activities.values():
            if activity.call_id == call_id:
                return activity
        return None

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "contacts": [e.to_dict() for e in self.contacts.values()],
                "companies": [e.to_dict() for e in self.companies.values()],
                "leads": [e.to_dict() for e in self.leads.values()],
                "activities": [a.to_dict() for a in self.activities.values()],
                "lead_creation_error": self.lead_creation_error,
            }


# --- demo data --------------------------------------------------------------------------------------------

_RU_FIRST = [
    "Иван",
    "Алексей",
    "Дмитрий",
    "Сергей",
    "Андрей",
    "Михаил",
    "Николай",
    "Павел",
    "Ольга",
    "Елена",
    "Татьяна",
    "Наталья",
    "Анна",
    "Екатерина",
    "Юлия",
    "Светлана",
]
_RU_LAST = [
    "Кузнецов",
    "Попов",
    "Васильев",
    "Соколов",
    "Михайлов",
    "Новиков",
    "Фёдоров",
    "Морозов",
    "Волков",
    "Алексеев",
    "Лебедев",
    "Семёнов",
    "Егоров",
    "Павлов",
    "Козлов",
    "Степанов",
]
_INTL = [
    ("Emma", "Johnson", "+1"),
    ("Liam", "Brown", "+1"),
    ("Sophie", "Martin", "+33"),
    ("Lukas", "Schneider", "+49"),
    ("Giulia", "Rossi", "+39"),
    ("Oliver", "Taylor", "+44"),
    ("Ayşe", "Yılmaz", "+90"),
    ("Jan", "Kowalski", "+48"),
]
_RU_COMPANIES = [
    "ООО «Вектор»",
    "АО «СеверСтройИнвест»",
    "ИП Соколова А. В.",
    "ООО «ТехноПарк»",
    "ООО «Лесная сказка»",
    "ЗАО «Меридиан»",
]
_INTL_COMPANIES = [("Globex GmbH", "+49"), ("Initech LLC", "+1"), ("Umbrella Ltd", "+44")]
_LEAD_TITLES = ["Заявка с сайта", "Запрос прайса", "Обратный звонок", "Website enquiry", "Demo request"]

# Well-known numbers that demos and tests can rely on; each one is stored in a different real-world format.
DEMO_FIXTURES: tuple[dict[str, Any], ...] = (
    {
        "type": CONTACT,
        "name": "Иван",
        "last_name": "Петров",
        "phones": [("8 (495) 123-45-67", "WORK")],
        "who": "online",
    },
    {
        "type": CONTACT,
        "name": "Мария",
        "last_name": "Смирнова",
        "phones": [("+7 916 555-12-34", "MOBILE"), ("84959876543", "WORK")],
        "who": "no_extension",
    },
    {"type": COMPANY, "title": "ООО «Ромашка»", "phones": [("+7 (812) 600-00-00", "WORK")], "who": "online"},
    {
        "type": CONTACT,
        "name": "Пётр",
        "last_name": "Иванов",
        "phones": [("8-812-600-00-00", "WORK")],
        "who": "away",
    },
    {
        "type": CONTACT,
        "name": "John",
        "last_name": "Smith",
        "phones": [("+1-415-555-0100", "WORK")],
        "who": "online",
    },
    {"type": COMPANY, "title": "Acme Ltd", "phones": [("+44 20 7946 0958", "WORK")], "who": "away"},
    {
        "type": LEAD,
        "title": "Заявка с сайта",
        "name": "Алексей",
        "last_name": "",
        "phones": [("8 800 555-35-35", "WORK")],
        "who": "no_extension",
    },
    {
        "type": LEAD,
        "title": "Messe Berlin contact",
        "name": "Hans",
        "last_name": "Müller",
        "phones": [("0049 30 901820", "WORK")],
        "who": "inactive",
    },
)


def _format_ru(rng: Random, digits: str) -> str:
    """``digits`` is a 10-digit Russian national number; render it the way people type it."""
    a, b, c, d = digits[:3], digits[3:6], digits[6:8], digits[8:]
    style = rng.randrange(7)
    return [
        f"+7 ({a}) {b}-{c}-{d}",
        f"8 ({a}) {b}-{c}-{d}",
        f"8{digits}",
        f"+7{digits}",
        f"7 {a} {b} {c} {d}",
        f"8-{a}-{b}-{c}-{d}",
        f"+7 {a} {b}{c}{d}",
    ][style]


def _format_intl(rng: Random, code: str, national: str) -> str:
    style = rng.randrange(3)
    if style == 0:
        return f"{code} {national[:3]} {national[3:6]} {national[6:]}"
    if style == 1:
        return f"00{code[1:]}{national}"
    return f"{code}-{national[:3]}-{national[3:6]}-{national[6:]}"


def _pick_users(portal: Portal) -> dict[str, list[User]]:
    users = sorted(portal.users.values(), key=lambda u: u.id)
    active = [u for u in users if u.active]
    groups = {
        "online": [u for u in active if u.uf_phone_inner and u.timeman_status == "OPENED"],
        "no_extension": [u for u in active if not u.uf_phone_inner],
        "away": [u for u in active if u.uf_phone_inner and u.timeman_status != "OPENED"],
        "inactive": [u for u in users if not u.active],
        "any": active or users,
    }
    return groups


def seed_demo(portal: Portal, rng: Random) -> None:
    """Fill ``portal.crm`` with realistic Russian and international contacts, companies and leads.

    Responsible users are the portal's own users (seed users first). The fixtures deliberately include
    entities owned by a user without an extension, by a user who is not at work, and by a deactivated user,
    whenever the portal has such users, because routing to the responsible manager must cope with them.
    """
    crm: CrmState = portal.crm
    groups = _pick_users(portal)
    if not groups["any"]:
        raise ValueError("seed the portal's users before its CRM")

    def responsible(kind: str) -> int:
        pool = groups.get(kind) or groups["online"] or groups["any"]
        return rng.choice(pool).id

    for fixture in DEMO_FIXTURES:
        owner = responsible(fixture["who"])
        if fixture["type"] == CONTACT:
            crm.add_contact(
                fixture["name"], fixture["last_name"], phones=fixture["phones"], assigned_by_id=owner
            )
        elif fixture["type"] == COMPANY:
            crm.add_company(fixture["title"], phones=fixture["phones"], assigned_by_id=owner)
        else:
            crm.add_lead(
                fixture["title"],
                name=fixture["name"],
                last_name=fixture["last_name"],
                phones=fixture["phones"],
                assigned_by_id=owner,
                source_id="WEB",
            )

    used: set[str] = {p.normalized for e in crm.entities() for p in e.phones}

    def fresh_ru(prefix: str) -> str:
        while True:
            digits = prefix + "".join(str(rng.randrange(10)) for _ in range(10 - len(prefix)))
            if "7" + digits not in used:
                used.add("7" + digits)
                return digits

    def fresh_intl(code: str) -> str:
        while True:
            national = str(rng.randrange(200, 999)) + "".join(str(rng.randrange(10)) for _ in range(7))
            if code[1:] + national not in used:
                used.add(code[1:] + national)
                return national

    for i in range(18):
        first = rng.choice(_RU_FIRST)
        last = rng.choice(_RU_LAST)
        if first.endswith(("а", "я")):
            last += "а"  # every surname in the list is the "-ов/-ев/-ин" kind
        phones = [(_format_ru(rng, fresh_ru(rng.choice(["9", "49", "81"]))), "MOBILE" if i % 2 else "WORK")]
        if rng.random() < 0.25:
            phones.append((_format_ru(rng, fresh_ru("49")), "WORK"))
        crm.add_contact(first, last, phones=phones, assigned_by_id=responsible("any"))
    for first, last, code in _INTL:
        crm.add_contact(
            first,
            last,
            phones=[(_format_intl(rng, code, fresh_intl(code)), "WORK")],
            assigned_by_id=responsible("any"),
        )
    for title in _RU_COMPANIES:
        crm.add_company(
            title, phones=[(_format_ru(rng, fresh_ru("49")), "WORK")], assigned_by_id=responsible("any")
        )
    for title, code in _INTL_COMPANIES:
        crm.add_company(
            title,
            phones=[(_format_intl(rng, code, fresh_intl(code)), "WORK")],
            assigned_by_id=responsible("any"),
        )
    for i in range(10):
        title = rng.choice(_LEAD_TITLES)
        crm.add_lead(
            title,
            name=rng.choice(_RU_FIRST) if i % 3 else "",
            phones=[(_format_ru(rng, fresh_ru("9")), "MOBILE")],
            assigned_by_id=responsible("any"),
            source_id=rng.choice(["WEB", "CALL", "ADVERTISING", "PARTNER"]),
        )
