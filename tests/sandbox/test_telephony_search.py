"""telephony.externalCall.searchCrmEntities on the sandbox portal (docs/bitrix24-contract.md §5.7, §6.3,
§2.4)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from test_telephony_harness import Harness


@pytest.fixture
def h() -> Iterator[Harness]:
    with Harness.start() as harness:
        yield harness


def test_match_comes_with_the_responsible_user_and_string_id(h: Harness) -> None:
    """§5.7/§2.4: ASSIGNED_BY.ID is a string next to the int ASSIGNED_BY_ID; empty phones are null."""
    h.portal.users[3].personal_mobile = "+7 916 000-00-03"
    contact = h.portal.crm.add_contact("Иван", "Петров", phones=["8 (495) 111-22-33"], assigned_by_id=3)
    assert h.ok("telephony.externalcall.searchcrmentities", {"PHONE_NUMBER": "+74951112233"}) == [
        {
            "CRM_ENTITY_TYPE": "CONTACT",
            "CRM_ENTITY_ID": contact.id,
            "ASSIGNED_BY_ID": 3,
            "NAME": "Иван Петров",
            "ASSIGNED_BY": {
                "ID": "3",
                "TIMEMAN_STATUS": "OPENED",
                "USER_PHONE_INNER": "102",
                "WORK_PHONE": None,
                "PERSONAL_PHONE": None,
                "PERSONAL_MOBILE": "+7 916 000-00-03",
            },
        }
    ]


def test_results_list_contacts_then_leads_then_companies(h: Harness) -> None:
    """§5.7: the module walks contacts, leads, companies in that order."""
    crm = h.portal.crm
    company = crm.add_company("Acme Ltd", phones=["+44 20 7946 0958"], assigned_by_id=2)
    lead = crm.add_lead("Demo request", phones=["00442079460958"], assigned_by_id=2)
    contact = crm.add_contact("Oliver", "Taylor", phones=["+44-20-7946-0958"], assigned_by_id=2)
    found = h.ok("telephony.externalcall.searchCrmEntities", {"PHONE_NUMBER": "442079460958"})
    assert [(r["CRM_ENTITY_TYPE"], r["CRM_ENTITY_ID"], r["NAME"]) for r in found] == [
        ("CONTACT", contact.id, "Oliver Taylor"),
        ("LEAD", lead.id, "Demo request"),
        ("COMPANY", company.id, "Acme Ltd"),
    ]


def test_unreachable_responsibles_show_why(h: Harness) -> None:
    """§5.7/§6.3: routing to the manager must see a missing extension or a closed working day."""
    h.portal.users[3].timeman_status = "CLOSED"
    crm = h.portal.crm
    crm.add_contact("No", "Extension", phones=["+79990000005"], assigned_by_id=5)
    crm.add_contact("Day", "Closed", phones=["+79990000003"], assigned_by_id=3)
    [no_ext] = h.ok("telephony.externalcall.searchcrmentities", {"PHONE_NUMBER": "+79990000005"})
    [closed] = h.ok("telephony.externalcall.searchcrmentities", {"PHONE_NUMBER": "89990000003"})
    assert (no_ext["ASSIGNED_BY"]["ID"], no_ext["ASSIGNED_BY"]["USER_PHONE_INNER"]) == ("5", None)
    assert closed["ASSIGNED_BY"]["TIMEMAN_STATUS"] == "CLOSED"


def test_deleted_responsible_gives_an_empty_user_block(h: Harness) -> None:
    """§5.7: the user lookup finds nothing, so every ASSIGNED_BY field is null."""
    h.portal.crm.add_contact("Orphan", "Client", phones=["+79990000099"], assigned_by_id=404)
    [row] = h.ok("telephony.externalcall.searchcrmentities", {"PHONE_NUMBER": "+79990000099"})
    assert row["ASSIGNED_BY_ID"] == 404 and set(row["ASSIGNED_BY"].values()) == {None}


def test_no_match_is_an_empty_array(h: Harness) -> None:
    """§5.7: "an array, possibly empty"."""
    assert h.ok("telephony.externalcall.searchcrmentities", {"PHONE_NUMBER": "+10000000000"}) == []


@pytest.mark.parametrize("params", [{}, {"PHONE_NUMBER": ""}, {"PHONE_NUMBER": None}])
def test_empty_number_is_an_error(h: Harness, params: dict[str, object]) -> None:
    """§5.7: "PHONE_NUMBER is empty"."""
    assert h.fail("telephony.externalcall.searchcrmentities", params) == (400, "", "PHONE_NUMBER is empty")


def test_portal_without_crm_says_so(h: Harness) -> None:
    """§5.7: "CRM is not installed." on a portal without the CRM module."""
    h.portal.crm.crm_installed = False
    assert h.fail("telephony.externalcall.searchcrmentities", {"PHONE_NUMBER": "+74951112233"})[2] == (
        "CRM is not installed."
    )


def test_search_works_with_webhooks_and_on_the_demo_portal() -> None:
    """§5/§12: searchCrmEntities allows webhooks; the demo portal's well-known numbers are found."""
    with Harness.start(seed="demo", domain="demo.bitrix24.test") as h:
        code = h.sb.add_webhook(h.portal, h.portal.admin().id, ["telephony"])
        found = h.ok(
            "telephony.externalCall.searchCrmEntities",
            {"PHONE_NUMBER": "+74951234567"},
            webhook=(h.portal.admin().id, code),
        )
        assert [(r["CRM_ENTITY_TYPE"], r["NAME"]) for r in found] == [("CONTACT", "Иван Петров")]
        assert int(found[0]["ASSIGNED_BY"]["ID"]) in h.portal.users
