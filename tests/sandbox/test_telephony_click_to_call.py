"""Click-to-call pre-registration and the call it leaves for the app (docs/bitrix24-contract.md §6.1,
§5.3, §12 "Events")."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from test_telephony_harness import START, Harness

from b24sandbox import telephony


@pytest.fixture
def h() -> Iterator[Harness]:
    with Harness.start() as harness:
        harness.bind("ONEXTERNALCALLSTART", "ONVOXIMPLANTCALLINIT", "ONVOXIMPLANTCALLSTART")
        yield harness


def test_click_pre_registers_an_outgoing_call_without_card_or_external_id(h: Harness) -> None:
    """§6.1: Bitrix24 registers the call (TYPE 1, no EXTERNAL_CALL_ID, card not shown) before the event."""
    call_id = h.sb.click_to_call(h.portal, 3, "+7 (916) 555-12-34")
    call = h.call(call_id)
    assert (call["via"], call["type"], call["user_id"], call["external_call_id"], call["registered_by"]) == (
        "click_to_call",
        1,
        3,
        None,
        None,
    )
    assert call["visible_to"] == [] and call["finished"] is False
    assert call_id.startswith("externalCall.") and call_id.endswith(f".{int(START)}")


def test_event_carries_the_pre_registered_call(h: Harness) -> None:
    """§6.1 data: PHONE_NUMBER as clicked, PHONE_NUMBER_INTERNATIONAL, USER_ID, CALL_ID, LINE_NUMBER "" … as
    strings; the voximplant init/start events fire too."""
    call_id = h.sb.click_to_call(h.portal, 3, "8 (916) 555-12-34")
    [event] = h.events("ONEXTERNALCALLSTART")
    data = event["data"]
    assert {
        k: data[k]
        for k in (
            "PHONE_NUMBER",
            "PHONE_NUMBER_INTERNATIONAL",
            "USER_ID",
            "CALL_ID",
            "LINE_NUMBER",
            "CALL_LIST_ID",
            "IS_MOBILE",
            "EXTENSION",
        )
    } == {
        "PHONE_NUMBER": "8 (916) 555-12-34",
        "PHONE_NUMBER_INTERNATIONAL": "+79165551234",
        "USER_ID": "3",
        "CALL_ID": call_id,
        "LINE_NUMBER": "",
        "CALL_LIST_ID": "0",
        "IS_MOBILE": "0",
        "EXTENSION": "",
    }
    assert [e["data"]["CALL_ID"] for e in h.events("ONVOXIMPLANTCALLSTART")] == [call_id]
    assert len(h.events("ONVOXIMPLANTCALLINIT")) == 1


def test_click_on_a_contact_binds_the_contact(h: Harness) -> None:
    """§6.1 CRM_ENTITY_TYPE/ID: the clicked entity is the call's entity, no lead is created."""
    contact = h.portal.crm.add_contact("Иван", "Петров", phones=["+74951234567"])
    call_id = h.sb.click_to_call(h.portal, 2, "+74951234567", crm=("CONTACT", contact.id))
    [event] = h.events("ONEXTERNALCALLSTART")
    assert (event["data"]["CRM_ENTITY_TYPE"], event["data"]["CRM_ENTITY_ID"]) == ("CONTACT", str(contact.id))
    assert h.call(call_id)["crm_created"] == [] and h.portal.crm.leads == {}


def test_unknown_number_gets_a_lead_unless_the_line_says_no(h: Harness) -> None:
    """§5.1 CRM_AUTO_CREATE "for outgoing calls": click-to-call on a Y line creates a lead, on an N line not."""
    h.ok("telephony.externalline.add", {"NUMBER": "74950000001", "CRM_AUTO_CREATE": "Y"})
    h.ok("telephony.externalline.add", {"NUMBER": "74950000002", "CRM_AUTO_CREATE": "N"})
    with_lead = h.sb.click_to_call(h.portal, 2, "+79990000001", line="74950000001")
    without = h.sb.click_to_call(h.portal, 2, "+79990000002", line="74950000002")
    assert h.call(with_lead)["crm_created_lead"] is not None
    assert h.call(without)["crm_created_lead"] is None
    assert [lead.phones[0].value for lead in h.portal.crm.leads.values()] == ["+79990000001"]
    assert h.call(with_lead)["line_number"] == "74950000001"


def test_app_finishes_the_same_call_id(h: Harness) -> None:
    """§6.1: "finish the same CALL_ID" — the statistics row shows an outgoing call without EXTERNAL_CALL_ID."""
    call_id = h.sb.click_to_call(h.portal, 3, "+79165551234")
    row = h.finish(call_id, USER_ID=3, DURATION=42)
    assert (row["INCOMING"], row["EXTERNAL_CALL_ID"], row["PORTAL_USER_ID"], row["CALL_FAILED_CODE"]) == (
        "1",
        None,
        3,
        "200",
    )


def test_registering_again_returns_the_click_to_call_id_unless_external_call_id_is_sent(h: Harness) -> None:
    """§5.3/§6.1: "Do not call register again": a repeat register of the same number by the same user gets the
    pre-registered CALL_ID; only an EXTERNAL_CALL_ID makes it a separate call."""
    call_id = h.sb.click_to_call(h.portal, 3, "+79165551234")
    again = h.register(USER_ID=3, PHONE_NUMBER="+79165551234", TYPE=1)
    assert again["CALL_ID"] == call_id
    separate = h.register(USER_ID=3, PHONE_NUMBER="+79165551234", TYPE=1, EXTERNAL_CALL_ID="pbx-9")
    assert separate["CALL_ID"] != call_id


def test_pre_registration_needs_an_active_user() -> None:
    """§5.3: the pre-registration runs the same checks as register."""
    with Harness.start() as h:
        from b24sandbox.registry import RestError

        with pytest.raises(RestError, match="User is not found or is not active"):
            telephony.preregister_click_call(
                h.portal,
                user_id=4,
                phone_number="+79165551234",
                line_number="",
                crm_entity_type=None,
                crm_entity_id=None,
                call_list_id=None,
                now=START,
            )
        assert h.snap()["calls"] == []
