"""telephony.externalCall.register on the sandbox portal (docs/bitrix24-contract.md §5.3, §10.4,
§12 "Telephony state machine")."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from test_telephony_harness import CLIENT_PHONE, START, Harness


@pytest.fixture
def h() -> Iterator[Harness]:
    with Harness.start() as harness:
        yield harness


# --- result shapes -------------------------------------------------------------------------------------------


def test_known_caller_is_bound_to_the_contact(h: Harness) -> None:
    """§5.3 result: CALL_ID externalCall.<32hex>.<ts>, the matched contact, nothing created."""
    contact = h.portal.crm.add_contact("Иван", "Петров", phones=["8 (495) 111-22-33"], assigned_by_id=3)
    result = h.register()
    assert re.fullmatch(r"externalCall\.[0-9a-f]{32}\.\d+", result["CALL_ID"])
    assert result["CALL_ID"].endswith(f".{int(START)}")
    assert result == {
        "CALL_ID": result["CALL_ID"],
        "CRM_CREATED_LEAD": None,
        "CRM_CREATED_ENTITIES": [],
        "CRM_ENTITY_TYPE": "CONTACT",
        "CRM_ENTITY_ID": contact.id,
    }


def test_unknown_caller_without_crm_create_has_empty_type_and_null_id(h: Harness) -> None:
    """§5.3: nothing found → "CRM_ENTITY_TYPE": "", "CRM_ENTITY_ID": null, no LEAD_CREATION_ERROR key."""
    result = h.register()
    assert result["CRM_ENTITY_TYPE"] == "" and result["CRM_ENTITY_ID"] is None
    assert "LEAD_CREATION_ERROR" not in result
    assert h.portal.crm.leads == {}


def test_crm_create_makes_a_lead_owned_by_the_call_user(h: Harness) -> None:
    """§5.3 CRM_CREATE=1: an unknown number becomes a lead; CRM_CREATED_LEAD and CRM_CREATED_ENTITIES say so."""
    result = h.register(CRM_CREATE=1, USER_ID=3, CRM_SOURCE="WEB")
    lead_id = result["CRM_CREATED_LEAD"]
    assert isinstance(lead_id, int)
    assert result["CRM_CREATED_ENTITIES"] == [{"ENTITY_TYPE": "LEAD", "ENTITY_ID": lead_id}]
    assert (result["CRM_ENTITY_TYPE"], result["CRM_ENTITY_ID"]) == ("LEAD", lead_id)
    lead = h.portal.crm.leads[lead_id]
    assert (lead.assigned_by_id, lead.source_id, lead.phones[0].value) == (3, "WEB", CLIENT_PHONE)
    assert h.call(result["CALL_ID"])["crm_created"] == [["LEAD", lead_id]]


def test_crm_create_does_not_duplicate_a_known_client(h: Harness) -> None:
    """§5.3: auto-creation only happens when nothing matches."""
    company = h.portal.crm.add_company("Vector LLC", phones=["+7 (495) 111-22-33"])
    result = h.register(CRM_CREATE=1)
    assert (result["CRM_ENTITY_TYPE"], result["CRM_ENTITY_ID"], result["CRM_CREATED_LEAD"]) == (
        "COMPANY",
        company.id,
        None,
    )
    assert h.portal.crm.leads == {}


def test_lead_creation_error_is_reported_in_the_result(h: Harness) -> None:
    """§5.3: when auto-creation fails the call is still registered, with LEAD_CREATION_ERROR."""
    h.portal.crm.lead_creation_error = "Lead creation is disabled for local users"
    result = h.register(CRM_CREATE=1)
    assert result["LEAD_CREATION_ERROR"] == "Lead creation is disabled for local users"
    assert (result["CRM_ENTITY_TYPE"], result["CRM_ENTITY_ID"], result["CRM_CREATED_ENTITIES"]) == (
        "",
        None,
        [],
    )
    assert h.call(result["CALL_ID"])["lead_creation_error"] == "Lead creation is disabled for local users"


def test_explicit_crm_binding_is_taken_as_given(h: Harness) -> None:
    """§5.3 CRM_ENTITY_TYPE/CRM_ENTITY_ID: used as the primary entity without a lookup (even if unknown)."""
    h.portal.crm.add_contact("Иван", "Петров", phones=[CLIENT_PHONE])
    result = h.register(CRM_ENTITY_TYPE="LEAD", CRM_ENTITY_ID="797", CRM_CREATE=1)
    assert (result["CRM_ENTITY_TYPE"], result["CRM_ENTITY_ID"], result["CRM_CREATED_LEAD"]) == (
        "LEAD",
        797,
        None,
    )


def test_calling_an_employee_extension_is_internal_and_never_creates_crm_data(h: Harness) -> None:
    """§5.3: a PHONE_NUMBER equal to an active user's extension is a portal call: no CRM lookup or creation."""
    result = h.register(PHONE_NUMBER="102", CRM_CREATE=1, TYPE=1)
    assert (result["CRM_ENTITY_TYPE"], result["CRM_CREATED_LEAD"]) == ("", None)
    call = h.call(result["CALL_ID"])
    assert call["crm_enabled"] is False and h.portal.crm.leads == {}


# --- users ---------------------------------------------------------------------------------------------------


def test_user_can_be_given_by_extension(h: Harness) -> None:
    """§5.3 USER_PHONE_INNER: resolved through UF_PHONE_INNER (Clara has 102)."""
    result = h.ok(
        "telephony.externalcall.register",
        {"USER_PHONE_INNER": "102", "PHONE_NUMBER": CLIENT_PHONE, "TYPE": 2},
    )
    assert h.call(result["CALL_ID"])["user_id"] == 3
    assert h.snap()["visible_cards"] == {result["CALL_ID"]: [3]}


def test_user_id_wins_over_extension_and_zero_means_absent(h: Harness) -> None:
    """§5.3: (int)USER_ID is used when non-zero, else USER_PHONE_INNER."""
    first = h.register(USER_ID=2, USER_PHONE_INNER="102")
    assert h.call(first["CALL_ID"])["user_id"] == 2
    second = h.register(USER_ID="0", USER_PHONE_INNER="102")
    assert h.call(second["CALL_ID"])["user_id"] == 3


def test_missing_user_is_refused(h: Harness) -> None:
    """§5.3: "USER_ID or USER_PHONE_INNER should be set" (empty error code as observed, HTTP 400)."""
    params = {"PHONE_NUMBER": CLIENT_PHONE, "TYPE": 2}
    assert h.fail("telephony.externalcall.register", params) == (
        400,
        "",
        "USER_ID or USER_PHONE_INNER should be set",
    )
    assert h.fail("telephony.externalcall.register", {**params, "USER_PHONE_INNER": "555"})[2] == (
        "USER_ID or USER_PHONE_INNER should be set"
    )


def test_inactive_or_unknown_user_id_is_not_found(h: Harness) -> None:
    """§5.3: "User is not found or is not active" for a deactivated (4) or missing user; nothing registered."""
    for user_id in (4, 999):
        assert h.fail(
            "telephony.externalcall.register",
            {"USER_ID": user_id, "PHONE_NUMBER": CLIENT_PHONE, "TYPE": 2, "LINE_NUMBER": "74950000000"},
        ) == (400, "", "User is not found or is not active")
    assert h.snap()["calls"] == [] and h.snap()["lines"] == []


def test_extension_of_an_inactive_user_does_not_resolve(h: Harness) -> None:
    """§5.3: the extension index only holds active users, so Dmitry's 103 reads as no user at all."""
    status, _, description = h.fail(
        "telephony.externalcall.register",
        {"USER_PHONE_INNER": "103", "PHONE_NUMBER": CLIENT_PHONE, "TYPE": 2},
    )
    assert (status, description) == (400, "USER_ID or USER_PHONE_INNER should be set")


def test_long_extensions_are_not_indexed(h: Harness) -> None:
    """§5.3: voximplant indexes UF_PHONE_INNER only as a number from 1 to 9999."""
    h.portal.users[2].uf_phone_inner = "10001"
    assert (
        h.fail(
            "telephony.externalcall.register",
            {"USER_PHONE_INNER": "10001", "PHONE_NUMBER": CLIENT_PHONE, "TYPE": 2},
        )[2]
        == "USER_ID or USER_PHONE_INNER should be set"
    )
    h.portal.users[2].uf_phone_inner = "0101"
    result = h.ok(
        "telephony.externalcall.register",
        {"USER_PHONE_INNER": "101", "PHONE_NUMBER": CLIENT_PHONE, "TYPE": 2},
    )
    assert h.call(result["CALL_ID"])["user_id"] == 2


# --- TYPE, date, phone ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("call_type", [1, 2, 3, 4, 5, "2", " 3", "4.0"])
def test_call_types_one_to_five_are_accepted(h: Harness, call_type: object) -> None:
    """§5.3 TYPE: 1 outgoing … 5 informational; PHP compares loosely, so numeric strings pass."""
    result = h.register(TYPE=call_type)
    assert h.call(result["CALL_ID"])["type"] == int(float(str(call_type)))


@pytest.mark.parametrize("call_type", [0, 6, "2abc", "", None, "incoming"])
def test_other_types_are_unknown(h: Harness, call_type: object) -> None:
    """§5.3: "Unknown TYPE"."""
    assert h.fail(
        "telephony.externalcall.register", {"USER_ID": 2, "PHONE_NUMBER": CLIENT_PHONE, "TYPE": call_type}
    ) == (400, "", "Unknown TYPE")


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("2026-03-10T11:19:38+03:00", "2026-03-10T11:19:38+03:00"),
        ("2026-03-10T08:19:38Z", "2026-03-10T08:19:38+00:00"),
        ("2026-03-10T11:19:38.250+0300", "2026-03-10T11:19:38+03:00"),
        ("2026-03-10T09:19:38+01:00", "2026-03-10T09:19:38+01:00"),
    ],
)
def test_start_date_with_an_offset_is_kept_as_sent(h: Harness, sent: str, stored: str) -> None:
    """§5.3 CALL_START_DATE: ISO-8601 with offset; the snapshot keeps the raw value and the parsed time."""
    call = h.call(h.register(CALL_START_DATE=sent)["CALL_ID"])
    assert (call["call_start_date"], call["call_start_date_iso"]) == (sent, stored)


@pytest.mark.parametrize(
    "sent", ["2026-03-10 11:19:38", "2026-03-10T11:19:38", "10.03.2026 11:19", "yesterday", 1773130000]
)
def test_start_date_without_offset_is_rejected(h: Harness, sent: object) -> None:
    """§5.3: "CALL_START_DATE should be in the ISO-8601 format" (strict mode, the default)."""
    assert h.fail(
        "telephony.externalcall.register",
        {"USER_ID": 2, "PHONE_NUMBER": CLIENT_PHONE, "TYPE": 2, "CALL_START_DATE": sent},
    ) == (400, "", "CALL_START_DATE should be in the ISO-8601 format")
    assert h.snap()["calls"] == []


def test_lenient_dates_read_a_naive_time_in_the_portal_time_zone(h: Harness) -> None:
    """§5.3/§11: the real portal parses with strtotime, so a naive time silently means server time."""
    h.state.start_date_mode = "lenient"
    call = h.call(h.register(CALL_START_DATE="2026-03-10 11:19:38")["CALL_ID"])
    assert call["call_start_date_iso"] == "2026-03-10T11:19:38+03:00"


def test_empty_start_date_means_now(h: Harness) -> None:
    """§5.3: CALL_START_DATE default is the server's current time."""
    call = h.call(h.register(CALL_START_DATE="")["CALL_ID"])
    assert call["call_start_date_iso"] == "2026-03-10T11:06:40+03:00"


@pytest.mark.parametrize("phone", ["", "unknown", "anonymous"])
def test_phone_without_digits_is_unsupported(h: Harness, phone: str) -> None:
    """§5.3: "Unsupported phone number format" when nothing phone-like is left."""
    assert h.fail("telephony.externalcall.register", {"USER_ID": 2, "PHONE_NUMBER": phone, "TYPE": 2}) == (
        400,
        "",
        "Unsupported phone number format",
    )


def test_phone_is_stored_with_letters_and_separators_stripped(h: Harness) -> None:
    """§5.3/§5.4: Bitrix24 keeps digits and + # * , ; — the finish result shows that form."""
    call_id = h.register(PHONE_NUMBER="+7 (495) 111-22-33 доб. 5")["CALL_ID"]
    assert h.call(call_id)["caller_id"] == "+749511122335"
    assert h.finish(call_id)["PHONE_NUMBER"] == "+749511122335"


def test_validation_order_matches_the_module(h: Harness) -> None:
    """§5.3: user → TYPE → CALL_START_DATE → phone → active user; the first failing check is reported."""
    base = {"USER_ID": 4, "PHONE_NUMBER": "x", "TYPE": 9, "CALL_START_DATE": "bad"}
    assert h.fail("telephony.externalcall.register", {**base, "USER_ID": None})[2].startswith("USER_ID or")
    assert h.fail("telephony.externalcall.register", base)[2] == "Unknown TYPE"
    assert h.fail("telephony.externalcall.register", {**base, "TYPE": 2})[2].startswith("CALL_START_DATE")
    assert h.fail("telephony.externalcall.register", {**base, "TYPE": 2, "CALL_START_DATE": ""})[2] == (
        "Unsupported phone number format"
    )
    assert h.fail(
        "telephony.externalcall.register",
        {**base, "TYPE": 2, "CALL_START_DATE": "", "PHONE_NUMBER": CLIENT_PHONE},
    )[2] == ("User is not found or is not active")


# --- card ----------------------------------------------------------------------------------------------------


def test_card_is_shown_to_the_user_by_default(h: Harness) -> None:
    """§5.3 SHOW default 1: the registering user sees the call card."""
    call_id = h.register()["CALL_ID"]
    assert h.portal.cards_visible(call_id) == {2}
    assert [e["op"] for e in h.call(call_id)["history"]] == ["register", "show"]


@pytest.mark.parametrize(("show", "form"), [(0, False), ("0", True), (False, False), ("", False)])
def test_show_zero_registers_silently(h: Harness, show: object, form: bool) -> None:
    """§5.3 SHOW=0: no card (JSON 0/false/"" or form "0")."""
    call_id = h.ok(
        "telephony.externalcall.register",
        {"USER_ID": 2, "PHONE_NUMBER": CLIENT_PHONE, "TYPE": 2, "SHOW": show},
        form=form,
    )["CALL_ID"]
    assert h.portal.cards_visible(call_id) == set()


def test_show_uses_php_truthiness(h: Harness) -> None:
    """§5.3/§2.4: SHOW is cast with (bool), so "N" and "false" mean show."""
    assert h.portal.cards_visible(h.register(SHOW="N")["CALL_ID"]) == {2}


# --- re-registration (30 minutes) ----------------------------------------------------------------------------


def test_same_call_within_thirty_minutes_gets_the_same_call_id(h: Harness) -> None:
    """§5.3 dedup: same number, TYPE and user while the first call is unfinished → the existing CALL_ID,
    with the first registration's CRM data (CRM fields are not part of the key)."""
    first = h.register(CRM_CREATE=1)
    h.advance(29 * 60)
    second = h.register(
        CRM_ENTITY_TYPE="CONTACT", CRM_ENTITY_ID=5, CALL_START_DATE="2026-03-10T11:35:40+03:00"
    )
    assert second == {k: v for k, v in first.items()}
    assert h.call(first["CALL_ID"])["registrations"] == 2
    assert len(h.snap()["calls"]) == 1 and len(h.portal.crm.leads) == 1


def test_number_formatting_is_part_of_the_key(h: Harness) -> None:
    """§5.3 dedup: the key is the stripped number, so "+7 495 111-22-33" repeats "+74951112233" but
    "84951112233" does not."""
    first = h.register()["CALL_ID"]
    assert h.register(PHONE_NUMBER="+7 495 111-22-33")["CALL_ID"] == first
    assert h.register(PHONE_NUMBER="84951112233")["CALL_ID"] != first


def test_external_call_id_separates_physical_calls(h: Harness) -> None:
    """§5.3: a different EXTERNAL_CALL_ID gives a new CALL_ID; the same one repeats it."""
    first = h.register(EXTERNAL_CALL_ID="pbx-1")["CALL_ID"]
    assert h.register(EXTERNAL_CALL_ID="pbx-2")["CALL_ID"] != first
    assert h.register(EXTERNAL_CALL_ID="pbx-1")["CALL_ID"] == first


def test_without_external_call_id_any_earlier_call_matches(h: Harness) -> None:
    """§5.3: EXTERNAL_CALL_ID only narrows the search when given."""
    first = h.register(EXTERNAL_CALL_ID="pbx-1")["CALL_ID"]
    assert h.register()["CALL_ID"] == first


def test_line_number_narrows_the_search_only_when_given(h: Harness) -> None:
    """§5.3: LINE_NUMBER (if given) is part of the key."""
    with_line = h.register(LINE_NUMBER="74950000001")["CALL_ID"]
    assert h.register()["CALL_ID"] == with_line
    assert h.register(LINE_NUMBER="74950000002")["CALL_ID"] != with_line


@pytest.mark.parametrize("change", [{"TYPE": 3}, {"USER_ID": 3}, {"PHONE_NUMBER": "+74951112234"}])
def test_different_type_user_or_number_is_a_new_call(h: Harness, change: dict[str, object]) -> None:
    """§5.3: PHONE_NUMBER, TYPE and user are all part of the key."""
    assert h.register()["CALL_ID"] != h.register(**change)["CALL_ID"]


def test_finished_or_old_calls_are_not_reused(h: Harness) -> None:
    """§5.3: only unfinished calls younger than 30 minutes are reused."""
    first = h.register()["CALL_ID"]
    h.finish(first)
    second = h.register()["CALL_ID"]
    assert second != first
    h.advance(30 * 60 + 1)
    assert h.register()["CALL_ID"] != second


def test_the_window_runs_on_the_call_start_date(h: Harness) -> None:
    """§5.3: the 30 minutes are measured from CALL_START_DATE, so a back-dated call is never reused."""
    first = h.register(CALL_START_DATE="2026-03-10T10:30:00+03:00")["CALL_ID"]  # 36 minutes before now
    assert h.register()["CALL_ID"] != first


def test_merged_calls_fail_on_the_second_finish(h: Harness) -> None:
    """§5.3 field report (b24-rest-docs#175): two physical calls without EXTERNAL_CALL_ID share a CALL_ID and
    the second finish answers code "" with "Call is not found (call should be registered prior to finishing"."""
    first = h.register()["CALL_ID"]
    second = h.register()["CALL_ID"]
    h.finish(first)
    assert h.fail("telephony.externalcall.finish", {"CALL_ID": second, "USER_ID": 2, "DURATION": 5}) == (
        400,
        "",
        "Call is not found (call should be registered prior to finishing",
    )


def test_re_registration_shows_the_card_again(h: Harness) -> None:
    """§5.3: a repeat register with SHOW shows the existing call's card to its user."""
    call_id = h.register()["CALL_ID"]
    h.ok("telephony.externalcall.hide", {"CALL_ID": call_id})
    assert h.portal.cards_visible(call_id) == set()
    h.register()
    assert h.portal.cards_visible(call_id) == {2}


# --- events and auth -----------------------------------------------------------------------------------------


def test_register_fires_call_init_and_call_start(h: Harness) -> None:
    """§10.4: ONVOXIMPLANTCALLINIT (CALL_ID, CALL_TYPE, CALLER_ID, REST_APP_ID) then ONVOXIMPLANTCALLSTART."""
    h.bind("ONVOXIMPLANTCALLINIT", "ONVOXIMPLANTCALLSTART")
    call_id = h.register(PHONE_NUMBER="+7 495 111-22-33", TYPE=1)["CALL_ID"]
    [init] = h.events("ONVOXIMPLANTCALLINIT")
    assert init["data"] == {
        "CALL_ID": call_id,
        "CALL_TYPE": "1",
        "CALLER_ID": CLIENT_PHONE,
        "REST_APP_ID": str(h.call(call_id)["rest_app_id"]),
    }
    [start] = h.events("ONVOXIMPLANTCALLSTART")
    assert start["data"] == {"CALL_ID": call_id, "USER_ID": "2"}


def test_re_registration_announces_a_call_id_it_then_discards(h: Harness) -> None:
    """§10.4: the module fires CALLINIT before its duplicate check, so a repeat register emits CALLINIT with a
    fresh CALL_ID that never exists, and no CALLSTART."""
    h.bind("ONVOXIMPLANTCALLINIT", "ONVOXIMPLANTCALLSTART")
    call_id = h.register()["CALL_ID"]
    assert h.register()["CALL_ID"] == call_id
    inits = h.events("ONVOXIMPLANTCALLINIT")
    assert len(inits) == 2 and inits[1]["data"]["CALL_ID"] != call_id
    assert len(h.events("ONVOXIMPLANTCALLSTART")) == 1


def test_register_refuses_webhooks(h: Harness) -> None:
    """§5: register is app-context only: webhook → 403 WRONG_AUTH_TYPE, nothing registered."""
    code = h.sb.add_webhook(h.portal, 1, ["telephony"])
    status, error, _ = h.fail(
        "telephony.externalCall.register",
        {"USER_ID": 2, "PHONE_NUMBER": CLIENT_PHONE, "TYPE": 2},
        webhook=(1, code),
    )
    assert (status, error) == (403, "WRONG_AUTH_TYPE")
    assert h.snap()["calls"] == []


def test_documented_error_code_can_be_switched_on(h: Harness) -> None:
    """§2.3/§11.8: "" by default, "ERROR_CORE" when configured."""
    h.state.core_error_code = "ERROR_CORE"
    assert h.fail("telephony.externalcall.register", {"USER_ID": 2, "PHONE_NUMBER": CLIENT_PHONE, "TYPE": 7})[
        :2
    ] == (400, "ERROR_CORE")
