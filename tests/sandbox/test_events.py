"""Events: docs/bitrix24-contract.md §4.1 (binding methods), §4.2 (delivery: no retry, after install only,
delay), §4.3 (wire format), §4.4 (auth block variants), §6.1 (ONEXTERNALCALLSTART), §6.2
(ONEXTERNALCALLBACKSTART)."""

from __future__ import annotations

import re

import pytest
import requests
from sandbox_fixtures import *  # noqa: F403  (fixtures)

from b24sandbox import telephony
from b24sandbox.pytest_plugin import RestCaller

HANDLER = "https://app.example.test/b24/events/"
USER_AUTH_KEYS = {"access_token", "expires", "expires_in", "scope", "domain", "server_endpoint", "status",
                  "client_endpoint", "member_id", "user_id", "application_token"}
SYSTEM_AUTH_KEYS = {"domain", "client_endpoint", "server_endpoint", "member_id", "application_token"}


@pytest.fixture
def bound(rest):
    for event in ("ONEXTERNALCALLSTART", "ONEXTERNALCALLBACKSTART"):
        rest.result("event.bind", {"event": event, "handler": HANDLER})
    return rest


def test_event_body_is_a_form_encoded_php_array_of_strings_4_3(sb, portal, bound, inbox, clock):
    call_id = sb.click_to_call(portal, 2, "+7 (495) 123-45-67", crm=("CONTACT", 0))
    event = inbox.events("ONEXTERNALCALLSTART")[-1]
    assert event.url == HANDLER
    assert event.headers["Content-Type"] == "application/x-www-form-urlencoded"
    flat = event.flat
    assert list(flat)[:2] == ["event", "event_handler_id"]
    assert flat["event"] == "ONEXTERNALCALLSTART" and flat["event_handler_id"].isdigit()
    assert flat["ts"] == str(int(clock.now()))
    assert flat["data[CALL_ID]"] == call_id
    assert all(isinstance(v, str) for v in flat.values())
    assert flat["data[USER_ID]"] == "2" and flat["data[IS_MOBILE]"] == "0" and flat["data[CALL_LIST_ID]"] == "0"


def test_onexternalcallstart_carries_a_pre_registered_call_id_6_1(sb, portal, bound, inbox):
    call_id = sb.click_to_call(portal, 2, "84951234567", line="", crm=("CONTACT", 0))
    assert re.fullmatch(r"externalCall\.[0-9a-f]{32}\.\d+", call_id)
    data = inbox.events("ONEXTERNALCALLSTART")[-1].form["data"]
    assert data["PHONE_NUMBER"] == "84951234567"
    assert data["PHONE_NUMBER_INTERNATIONAL"] == "+74951234567"
    assert data["LINE_NUMBER"] == "" and data["EXTENSION"] == ""
    call = next(c for c in telephony.snapshot(portal)["calls"] if c["call_id"] == call_id)
    assert call["type"] == 1 and call["user_id"] == 2 and not call["finished"]
    # the app must not register again: it finishes the same CALL_ID
    finished = bound.result("telephony.externalcall.finish", {"CALL_ID": call_id, "USER_ID": 2, "DURATION": 30})
    assert finished["CALL_ID"] == call_id


def test_click_to_call_finds_the_crm_entity_by_phone_6_1(sb, portal, bound, inbox):
    contact = portal.crm.add_contact("Ivan", "Petrov", phones=["+7 (495) 765-43-21"], assigned_by_id=3)
    sb.click_to_call(portal, 2, "84957654321")
    data = inbox.events("ONEXTERNALCALLSTART")[-1].form["data"]
    assert (data["CRM_ENTITY_TYPE"], data["CRM_ENTITY_ID"]) == ("CONTACT", str(contact.id))


def test_callback_form_event_has_no_call_id_and_no_user_6_2(sb, portal, bound, inbox):
    sb.submit_callback_form(portal, "+79161234567", text="Call me about the invoice", voice="ruinternalfemale",
                            line="74950000001")
    form = inbox.events("ONEXTERNALCALLBACKSTART")[-1].form
    assert set(form["data"]) == {"PHONE_NUMBER", "TEXT", "VOICE", "CRM_ENTITY_TYPE", "CRM_ENTITY_ID", "LINE_NUMBER"}
    assert form["data"]["LINE_NUMBER"] == "74950000001" and form["data"]["CRM_ENTITY_TYPE"] == "LEAD"
    assert "CALL_ID" not in form["data"] and "USER_ID" not in form["data"]
    assert set(form["auth"]) == SYSTEM_AUTH_KEYS  # no user triggered it: no tokens


def test_user_auth_block_carries_the_clicking_users_working_token_4_4(sb, portal, bound, inbox):
    sb.click_to_call(portal, 3, "+74951234567")
    auth = inbox.events()[-1].form["auth"]
    assert set(auth) == USER_AUTH_KEYS
    assert auth["user_id"] == "3" and auth["expires_in"] == "3600"
    assert auth["application_token"] == portal.app.application_token
    assert RestCaller(sb, portal, auth["access_token"]).result("user.current")["ID"] == "3"


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("system", SYSTEM_AUTH_KEYS),
        ("no_server_endpoint", USER_AUTH_KEYS - {"server_endpoint"}),
        ("wrong_application_token", USER_AUTH_KEYS),
    ],
)
def test_auth_block_variants_are_selectable_4_4(sb, portal, bound, inbox, variant, expected):
    sb.event_auth = variant
    sb.click_to_call(portal, 2, "+74951234567")
    auth = inbox.events()[-1].form["auth"]
    assert set(auth) == expected
    if variant == "wrong_application_token":
        assert auth["application_token"] != portal.app.application_token


def test_auth_variant_can_differ_per_portal_and_refresh_token_is_optional_4_4(sb, portal, bound, inbox):
    portal.event_auth = "system"
    sb.click_to_call(portal, 2, "+74951234567")
    assert "access_token" not in inbox.events()[-1].form["auth"]
    portal.event_auth = None
    sb.event_refresh_token = True
    sb.click_to_call(portal, 2, "+74951234568")
    assert inbox.events()[-1].form["auth"]["refresh_token"]


def test_auth_type_binding_uses_that_users_token_4_1(sb, portal, rest, inbox):
    rest.result("event.bind", {"event": "ONEXTERNALCALLSTART", "handler": HANDLER, "auth_type": 3})
    sb.click_to_call(portal, 2, "+74951234567")
    assert inbox.events()[-1].form["auth"]["user_id"] == "3"


def test_a_failed_delivery_is_recorded_and_never_retried_4_2(sb, portal, bound, inbox):
    inbox.status = 500
    sb.click_to_call(portal, 2, "+74951234567")
    inbox.status, inbox.error = 200, requests.ConnectionError("refused")
    sb.click_to_call(portal, 2, "+74951234568")
    inbox.error = None
    sb.click_to_call(portal, 2, "+74951234569")
    assert len(inbox.events("ONEXTERNALCALLSTART")) == 3  # one attempt each
    outcomes = [d.error for d in sb.deliveries(portal, "ONEXTERNALCALLSTART")]
    assert outcomes[0].startswith("HTTP 500") and "ConnectionError" in outcomes[1] and outcomes[2] is None


def test_events_can_be_delayed_on_the_test_clock_4_2(sb, portal, bound, inbox, clock):
    sb.event_delay = 5
    sb.click_to_call(portal, 2, "+74951234567")
    assert inbox.events() == [] and len(sb.pending_events) == 1
    clock.advance(4)
    assert inbox.events() == []
    clock.advance(1)
    assert len(inbox.events("ONEXTERNALCALLSTART")) == 1


def test_held_events_wait_for_flush_4_2(sb, portal, bound, inbox):
    sb.hold_events = True
    sb.click_to_call(portal, 2, "+74951234567")
    sb.submit_callback_form(portal, "+79160000000")
    assert inbox.events() == []
    assert sb.flush_events() == 2
    assert [e.event for e in inbox.events()] == ["ONEXTERNALCALLSTART", "ONEXTERNALCALLBACKSTART"]


def test_duplicate_bind_is_an_error_in_either_documented_form_4_1_11_11(sb, rest):
    params = {"event": "ONEXTERNALCALLSTART", "handler": HANDLER}
    rest.result("event.bind", params)
    duplicate = rest.call("event.bind", params)
    assert duplicate.status_code == 400 and duplicate.json()["error"] == "ERROR_HANDLER_ALREADY_EXIST"
    sb.duplicate_bind_style = "unable"
    assert rest.call("event.bind", params).json()["error_description"].startswith("Unable to set event handler")


def test_unknown_event_or_one_outside_the_apps_scope_is_event_not_found_4_1(sb, portal, rest):
    unknown = rest.call("event.bind", {"event": "ONNOTHING", "handler": HANDLER})
    assert unknown.status_code == 400
    assert unknown.json() == {"error": "ERROR_EVENT_NOT_FOUND", "error_description": "Event not found"}
    portal.app.scope = ("crm",)
    narrow = RestCaller(sb, portal, sb.issue_token(portal)["access_token"])
    assert narrow.call("event.bind", {"event": "ONEXTERNALCALLSTART", "handler": HANDLER}).json()["error"] == (
        "ERROR_EVENT_NOT_FOUND"
    )


def test_event_names_are_case_insensitive_and_unbind_counts_4_1(rest):
    rest.result("event.bind", {"event": "onExternalCallStart", "handler": HANDLER})
    assert rest.result("event.get")[0]["event"] == "ONEXTERNALCALLSTART"
    assert rest.result("event.unbind", {"event": "ONEXTERNALCALLSTART", "handler": HANDLER}) == {"count": 1}
    assert rest.result("event.unbind", {"event": "ONEXTERNALCALLSTART", "handler": HANDLER}) == {"count": 0}


def test_non_admins_bind_only_for_themselves_and_see_only_their_bindings_4_1(sb, portal, rest):
    agent = RestCaller(sb, portal, sb.issue_token(portal, 2)["access_token"])
    rest.result("event.bind", {"event": "ONEXTERNALCALLSTART", "handler": HANDLER})
    foreign = agent.call("event.bind", {"event": "ONEXTERNALCALLSTART", "handler": HANDLER + "x", "auth_type": 1})
    assert foreign.status_code == 403 and foreign.json()["error"] == "ACCESS_DENIED"
    offline = agent.call("event.bind", {"event": "ONCRMLEADADD", "event_type": "offline"})
    assert offline.status_code == 403
    agent.result("event.bind", {"event": "ONEXTERNALCALLBACKSTART", "handler": HANDLER})
    assert [b["event"] for b in agent.result("event.get")] == ["ONEXTERNALCALLBACKSTART"]
    assert len(rest.result("event.get")) == 2


def test_event_test_sends_onapptest_with_the_query_4_1(rest, inbox):
    rest.result("event.bind", {"event": "ONAPPTEST", "handler": HANDLER})
    assert rest.result("event.test", {"probe": "42"}) == 1
    assert inbox.events("ONAPPTEST")[-1].form["data"]["QUERY"] == {"probe": "42"}


def test_click_to_call_goes_nowhere_when_the_app_is_not_the_default_line_12(sb, portal, bound, inbox):
    from b24sandbox import InstallError

    portal.app_is_default_line = False
    with pytest.raises(InstallError):
        sb.click_to_call(portal, 2, "+74951234567")
    assert inbox.events() == []


def test_a_click_carries_the_clicking_users_own_token_and_the_bindings_handler_id_4_3_4_4_1_11(sb, portal, bound,
                                                                                             inbox, rest):
    sb.click_to_call(portal, 3, "+74951234567")
    form = inbox.events("ONEXTERNALCALLSTART")[-1].form
    info = requests.get(f"https://{sb.oauth_host}/rest/app.info", params={"auth": form["auth"]["access_token"]},
                        timeout=5).json()["result"]
    assert info["user_id"] == 3 == int(form["auth"]["user_id"]) == int(form["data"]["USER_ID"])
    assert info["install"]["member_id"] == form["auth"]["member_id"] == portal.member_id
    binding = next(b for b in portal.event_bindings if b.event == "ONEXTERNALCALLSTART")
    assert form["event_handler_id"] == str(binding.id)
    # A callback form is submitted by a visitor, not a user: no user token (§6.2, §4.4 "system").
    sb.submit_callback_form(portal, "+79165550123")
    assert "access_token" not in inbox.events("ONEXTERNALCALLBACKSTART")[-1].form["auth"]
