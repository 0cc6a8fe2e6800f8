# ruff: noqa: RUF001  -- Cyrillic CRM names are the point of these tests
"""Demo CRM data of a sandbox portal (docs/bitrix24-contract.md §5.7 routing data, §12 "CRM lookup")."""

from __future__ import annotations

import re
from random import Random

import pytest

from b24sandbox import crm
from b24sandbox.state import Portal, User


def _portal() -> Portal:
    portal = Portal(member_id="a" * 32, domain="demo.bitrix24.test", plan="standard")
    portal.users = {
        1: User(1, "Анна", "Админова", "admin@demo.test", is_admin=True, uf_phone_inner="100"),
        2: User(2, "Борис", "Орлов", "b@demo.test", uf_phone_inner="101"),
        3: User(3, "Clara", "Weber", "c@demo.test", uf_phone_inner="102", timeman_status="CLOSED"),
        4: User(4, "Дмитрий", "Уволенный", "d@demo.test", active=False, uf_phone_inner="103"),
        5: User(5, "Елена", "Без-Номера", "e@demo.test"),
        6: User(6, "Frank", "Paused", "f@demo.test", uf_phone_inner="104", timeman_status="PAUSED"),
    }
    return portal


def _seeded(seed: int = 1) -> Portal:
    portal = _portal()
    crm.seed_demo(portal, Random(seed))
    return portal


def test_fixture_numbers_are_found_by_their_international_form() -> None:
    """§12 "CRM lookup": each well-known demo number, stored in a different real-world format, matches E.164."""
    state = _seeded().crm
    expectations = {
        "+74951234567": [("CONTACT", "Иван Петров")],
        "+79165551234": [("CONTACT", "Мария Смирнова")],
        "+74959876543": [("CONTACT", "Мария Смирнова")],
        "+78126000000": [("CONTACT", "Пётр Иванов"), ("COMPANY", "ООО «Ромашка»")],
        "+14155550100": [("CONTACT", "John Smith")],
        "+442079460958": [("COMPANY", "Acme Ltd")],
        "+78005553535": [("LEAD", "Алексей")],
        "+4930901820": [("LEAD", "Hans Müller")],
    }
    for number, expected in expectations.items():
        assert [(e.entity_type, e.display_name) for e in state.find_by_phone(number)] == expected, number


def test_responsible_users_are_portal_users_including_unreachable_ones() -> None:
    """§5.7 ASSIGNED_BY: routing to the responsible manager must meet owners without an extension, owners not
    at work and deactivated owners; the demo data has each of them."""
    portal = _seeded()
    owners = {e.assigned_by_id for e in portal.crm.entities()}
    assert owners <= set(portal.users)
    fixture_owners = {e.display_name: portal.users[e.assigned_by_id] for e in portal.crm.entities()}
    assert not fixture_owners["Мария Смирнова"].uf_phone_inner
    assert fixture_owners["Пётр Иванов"].timeman_status != "OPENED"
    assert not fixture_owners["Hans Müller"].active
    assert (
        fixture_owners["Иван Петров"].uf_phone_inner
        and fixture_owners["Иван Петров"].timeman_status == "OPENED"
    )


def test_demo_data_is_sizeable_mixed_and_deterministic() -> None:
    """§12: realistic Russian and international data, reproducible from the seed."""
    portal = _seeded(5)
    state = portal.crm
    assert len(state.contacts) >= 25 and len(state.companies) >= 9 and len(state.leads) >= 12
    names = [e.display_name for e in state.entities()]
    assert any(re.search("[А-Яа-я]", n) for n in names) and any(
        re.fullmatch("[A-Za-z .ü-]+", n) for n in names
    )
    phones = [p.value for e in state.entities() for p in e.phones]
    shapes = {re.sub(r"\d", "9", p) for p in phones}
    assert len(shapes) >= 8  # brackets, dashes, spaces, bare digits, 8/+7/00 prefixes
    assert any(p.startswith("8") for p in phones) and any(p.startswith("+7") for p in phones)
    assert any(p.startswith("00") for p in phones)

    again = _seeded(5).crm.snapshot()
    assert again == state.snapshot()
    assert _seeded(6).crm.snapshot() != state.snapshot()


def test_only_the_deliberate_shared_number_belongs_to_two_entities() -> None:
    """§5.7: a company's main line shared with its employee is the one multi-match in the demo data."""
    state = _seeded(3).crm
    owners: dict[str, set[tuple[str, int]]] = {}
    for entity in state.entities():
        for phone in entity.phones:
            owners.setdefault(phone.normalized, set()).add((entity.entity_type, entity.id))
    shared = {number for number, who in owners.items() if len(who) > 1}
    assert shared == {"78126000000"}


def test_seeding_needs_users_first() -> None:
    """§12: responsible users come from the portal, so a portal without users cannot be seeded."""
    portal = Portal(member_id="b" * 32, domain="empty.bitrix24.test", plan="standard")
    with pytest.raises(ValueError, match="users"):
        crm.seed_demo(portal, Random(1))
