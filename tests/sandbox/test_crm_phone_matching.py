# ruff: noqa: RUF001  -- Cyrillic CRM names are the point of these tests
"""CRM phone matching and lead creation of the sandbox portal (docs/bitrix24-contract.md §5.3, §5.7,
§12 "CRM lookup")."""

from __future__ import annotations

import pytest

from b24sandbox import crm


@pytest.mark.parametrize(
    ("stored", "dialed"),
    [
        ("8 (495) 123-45-67", "+74951234567"),
        ("+7 (495) 123-45-67", "84951234567"),
        ("7 495 123 45 67", "+7-495-123-45-67"),
        ("8-800-555-35-35", "+78005553535"),
        ("+1-415-555-0100", "0014155550100"),
        ("+44 20 7946 0958", "00442079460958"),
        ("011 44 20 7946 0958", "+442079460958"),
        ("+86 10 1234 5678", "00861012345678"),
    ],
)
def test_numbers_typed_in_different_formats_match_like_on_bitrix24(stored: str, dialed: str) -> None:
    """§12 "CRM lookup": Bitrix24 normalises both sides (NormalizePhone): trunk 8→7, 00/011 prefixes, formatting."""
    state = crm.CrmState()
    contact = state.add_contact("Иван", "Петров", phones=[stored], assigned_by_id=2)
    assert [e.id for e in state.find_by_phone(dialed)] == [contact.id]
    assert crm.normalize_phone(stored) == crm.normalize_phone(dialed)


@pytest.mark.parametrize(
    ("stored", "dialed"),
    [
        ("(415) 555-0100", "+1 415 555 0100"),  # no country code stored: Bitrix24 cannot recover it
        ("495-123-45-67", "+74951234567"),  # ten digits without trunk prefix stay as typed
        ("8 (495) 123-45-67", "+74951234568"),
    ],
)
def test_numbers_that_bitrix24_does_not_consider_equal_do_not_match(stored: str, dialed: str) -> None:
    """§12 "CRM lookup": matching is equality of normalised numbers, not "last N digits"."""
    state = crm.CrmState()
    state.add_contact("John", "Smith", phones=[stored])
    assert state.find_by_phone(dialed) == []


def test_short_and_empty_numbers_are_not_rewritten() -> None:
    """§12: prefix rewriting only applies to numbers of ten characters or more."""
    assert crm.normalize_phone("101") == "101"
    assert crm.normalize_phone("8123") == "8123"
    assert crm.normalize_phone("") == ""
    assert crm.normalize_phone(None) == ""
    assert crm.normalize_phone("ext") == ""


def test_call_card_prefers_contacts_then_companies_then_leads() -> None:
    """§5.3: the primary entity of a call is a contact before a company before a lead, oldest first."""
    state = crm.CrmState()
    lead = state.add_lead("Заявка", phones=["+7 812 600-00-00"])
    company = state.add_company("ООО «Ромашка»", phones=["+7 (812) 600-00-00"])
    contact = state.add_contact("Пётр", "Иванов", phones=["8-812-600-00-00"])
    found = state.find_by_phone("+78126000000")
    assert [(e.entity_type, e.id) for e in found] == [
        ("CONTACT", contact.id),
        ("COMPANY", company.id),
        ("LEAD", lead.id),
    ]
    searched = state.find_by_phone("+78126000000", crm.SEARCH_ORDER)
    assert [e.entity_type for e in searched] == ["CONTACT", "LEAD", "COMPANY"]


def test_display_names_follow_bitrix24() -> None:
    """§5.7 NAME: full name for contacts, title for companies, name or else title for leads."""
    state = crm.CrmState()
    assert state.add_contact("Мария", "Смирнова").display_name == "Мария Смирнова"
    assert state.add_company("Acme Ltd").display_name == "Acme Ltd"
    assert state.add_lead("Website enquiry").display_name == "Website enquiry"
    assert state.add_lead("Website enquiry", name="Hans", last_name="Müller").display_name == "Hans Müller"


def test_ids_are_per_type_and_explicit_ids_are_kept() -> None:
    """§5.3 result: CRM_ENTITY_ID is the entity's own id; each type has its own sequence."""
    state = crm.CrmState()
    assert state.add_contact("A").id == 1
    assert state.add_company("B").id == 1
    assert state.add_contact("C", id=797).id == 797
    assert state.add_contact("D").id == 798
    with pytest.raises(ValueError, match="already exists"):
        state.add_contact("E", id=797)


def test_lead_for_a_call_carries_the_number_responsible_and_source() -> None:
    """§5.3 CRM_CREATE: an unknown caller becomes a lead owned by the call's user."""
    state = crm.CrmState()
    lead = state.create_lead_for_call(
        call_id="externalCall.x.1",
        phone="+79990001122",
        assigned_by_id=3,
        incoming=True,
        source_id=None,
        now=1.0,
    )
    assert (lead.entity_type, lead.assigned_by_id, lead.source_id, lead.created_by_call) == (
        "LEAD",
        3,
        "CALL",
        "externalCall.x.1",
    )
    assert state.find_by_phone("89990001122") == [lead]


def test_lead_creation_can_be_made_to_fail_like_on_restricted_portals() -> None:
    """§5.3 LEAD_CREATION_ERROR: "Lead creation is disabled for local users" was observed in the field."""
    state = crm.CrmState(lead_creation_error="Lead creation is disabled for local users")
    with pytest.raises(crm.LeadCreationError, match="disabled for local users"):
        state.create_lead_for_call(
            call_id="c", phone="+79990001122", assigned_by_id=1, incoming=True, source_id=None, now=1.0
        )
    assert state.leads == {}
