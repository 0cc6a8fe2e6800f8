"""telephony.externalCall.finish on the sandbox portal (docs/bitrix24-contract.md §5.4, §2.3, §2.4, §10.2,
§10.4, §12)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import responses
from test_telephony_harness import CLIENT_ID, CLIENT_PHONE, Harness


@pytest.fixture
def h() -> Iterator[Harness]:
    with Harness.start() as harness:
        yield harness


def test_finish_returns_the_statistics_row_with_bitrix24_quirks(h: Harness) -> None:
    """§5.4 result + §2.4: INCOMING "2" and REST_APP_ID as strings, CALL_START_DATE as {}, documented key order."""
    contact = h.portal.crm.add_contact("Иван", "Петров", phones=["8 (495) 111-22-33"], assigned_by_id=3)
    call_id = h.register(LINE_NUMBER="74950000001", EXTERNAL_CALL_ID="pbx-77")["CALL_ID"]
    row = h.finish(call_id, DURATION=95, VOTE=5, COST=1.25, COST_CURRENCY="RUB")
    activity = h.portal.crm.activity_for_call(call_id)
    assert row == {
        "CALL_ID": call_id,
        "EXTERNAL_CALL_ID": "pbx-77",
        "PORTAL_USER_ID": 2,
        "PHONE_NUMBER": CLIENT_PHONE,
        "PORTAL_NUMBER": "74950000001",
        "INCOMING": "2",
        "CALL_DURATION": 95,
        "CALL_START_DATE": {},
        "CALL_STATUS": 1,
        "CALL_VOTE": 5,
        "COST": 1.25,
        "COST_CURRENCY": "RUB",
        "CALL_FAILED_CODE": "200",
        "CALL_FAILED_REASON": "",
        "REST_APP_ID": str(h.call(call_id)["rest_app_id"]),
        "REST_APP_NAME": h.sb.app.code,
        "CRM_ACTIVITY_ID": activity.id,
        "COMMENT": None,
        "CRM_ENTITY_TYPE": "CONTACT",
        "CRM_ENTITY_ID": contact.id,
        "ID": 1,
    }
    assert list(row) == [
        "CALL_ID",
        "EXTERNAL_CALL_ID",
        "PORTAL_USER_ID",
        "PHONE_NUMBER",
        "PORTAL_NUMBER",
        "INCOMING",
        "CALL_DURATION",
        "CALL_START_DATE",
        "CALL_STATUS",
        "CALL_VOTE",
        "COST",
        "COST_CURRENCY",
        "CALL_FAILED_CODE",
        "CALL_FAILED_REASON",
        "REST_APP_ID",
        "REST_APP_NAME",
        "CRM_ACTIVITY_ID",
        "COMMENT",
        "CRM_ENTITY_TYPE",
        "CRM_ENTITY_ID",
        "ID",
    ]
    assert h.snap()["statistics"] == [row]


def test_call_without_crm_data_has_no_crm_keys_and_no_activity(h: Harness) -> None:
    """§5.4: CRM_ENTITY_* appear only when the call has an entity; PORTAL_NUMBER is "REST_APP:<id>" without a
    line; EXTERNAL_CALL_ID null and COST 0 (not 0.0)."""
    call_id = h.register()["CALL_ID"]
    row = h.finish(call_id)
    assert "CRM_ENTITY_TYPE" not in row and "CRM_ENTITY_ID" not in row
    assert row["CRM_ACTIVITY_ID"] is None and h.portal.crm.activities == {}
    assert row["PORTAL_NUMBER"] == f"REST_APP:{row['REST_APP_ID']}"
    assert row["EXTERNAL_CALL_ID"] is None and row["COST"] == 0 and isinstance(row["COST"], int)


@pytest.mark.parametrize(
    ("params", "code", "status", "duration"),
    [
        ({"DURATION": 42}, "200", 1, 42),
        ({"DURATION": 0}, "304", 0, 0),
        ({}, "304", 0, 0),
        ({"DURATION": "17"}, "200", 1, 17),
        ({"DURATION": 5, "STATUS_CODE": "486"}, "486", 1, 5),
        ({"DURATION": 0, "STATUS_CODE": "603-S"}, "603-S", 0, 0),
        ({"DURATION": 3, "STATUS_CODE": "0"}, "200", 1, 3),
        ({"DURATION": 0, "STATUS_CODE": ""}, "304", 0, 0),
    ],
)
def test_status_code_defaults_and_call_status(
    h: Harness, params: dict[str, object], code: str, status: int, duration: int
) -> None:
    """§5.4: STATUS_CODE defaults to 200 if DURATION>0 else 304; CALL_STATUS is 1 exactly when DURATION>0."""
    call_id = h.register()["CALL_ID"]
    row = h.ok("telephony.externalcall.finish", {"CALL_ID": call_id, "USER_ID": 2, **params})
    assert (row["CALL_FAILED_CODE"], row["CALL_STATUS"], row["CALL_DURATION"]) == (code, status, duration)
    assert (h.call(call_id)["status_code"], h.call(call_id)["duration"]) == (code, duration)


@pytest.mark.parametrize("call_id", [12345, None, ["externalCall.x"]])
def test_call_id_must_be_a_string(h: Harness, call_id: object) -> None:
    """§5.4: "CALL_ID must be a string" → INVALID_ARGUMENT (HTTP 400)."""
    params = {"USER_ID": 2} if call_id is None else {"USER_ID": 2, "CALL_ID": call_id}
    assert h.fail("telephony.externalcall.finish", params) == (
        400,
        "INVALID_ARGUMENT",
        "CALL_ID must be a string",
    )


def test_user_is_checked_before_the_call_id(h: Harness) -> None:
    """§5.4: the user check runs first."""
    assert h.fail("telephony.externalcall.finish", {"CALL_ID": 1}) == (
        400,
        "",
        "USER_ID or USER_PHONE_INNER should be set",
    )


def test_unknown_or_already_finished_call_is_not_found(h: Harness) -> None:
    """§5.4: code "" and "Call is not found (call should be registered prior to finishing" — the module really
    omits the closing parenthesis — for an unknown CALL_ID and for a second finish; nothing changes."""
    message = "Call is not found (call should be registered prior to finishing"
    assert h.fail("telephony.externalcall.finish", {"CALL_ID": "externalCall.nope.1", "USER_ID": 2}) == (
        400,
        "",
        message,
    )
    call_id = h.register()["CALL_ID"]
    h.finish(call_id, DURATION=30)
    assert h.fail("telephony.externalcall.finish", {"CALL_ID": call_id, "USER_ID": 3, "DURATION": 99}) == (
        400,
        "",
        message,
    )
    assert len(h.snap()["statistics"]) == 1
    assert (h.call(call_id)["finish_user_id"], h.call(call_id)["duration"]) == (2, 30)


def test_inactive_finishing_user_is_refused_and_the_call_stays_open(h: Harness) -> None:
    """§5.4: "User is not found or is not active"; the call can still be finished by someone else."""
    call_id = h.register()["CALL_ID"]
    assert h.fail("telephony.externalcall.finish", {"CALL_ID": call_id, "USER_ID": 4}) == (
        400,
        "",
        "User is not found or is not active",
    )
    assert h.call(call_id)["finished"] is False
    assert h.finish(call_id, USER_ID=3)["PORTAL_USER_ID"] == 3


def test_finishing_user_may_be_given_by_extension_and_differ_from_the_registrant(h: Harness) -> None:
    """§5.4 USER_PHONE_INNER: the answering agent (Clara, 102) becomes PORTAL_USER_ID."""
    call_id = h.register(USER_ID=2)["CALL_ID"]
    row = h.ok(
        "telephony.externalcall.finish", {"CALL_ID": call_id, "USER_PHONE_INNER": "102", "DURATION": 7}
    )
    assert row["PORTAL_USER_ID"] == 3
    call = h.call(call_id)
    assert (call["user_id"], call["finish_user_id"], call["finish"]["user_phone_inner_sent"]) == (2, 3, "102")


def test_finish_hides_the_card_only_from_the_finishing_user(h: Harness) -> None:
    """§5.4 "hides the call card": the module hides it from the finishing user; others keep a stale card and,
    since the call is gone, show/hide on it now answer false."""
    call_id = h.register()["CALL_ID"]
    h.ok("telephony.externalcall.show", {"CALL_ID": call_id, "USER_ID": [3, 5]})
    h.finish(call_id, USER_ID=3)
    assert h.portal.cards_visible(call_id) == {2, 5}
    assert h.ok("telephony.externalcall.hide", {"CALL_ID": call_id, "USER_ID": [2, 5]}) is False
    assert h.ok("telephony.externalcall.show", {"CALL_ID": call_id}) is False
    finish_entry = next(e for e in h.call(call_id)["history"] if e["op"] == "finish")
    assert (finish_entry["hidden_for"], finish_entry["still_visible_to"]) == ([3], [2, 5])


def test_finish_can_be_set_to_hide_the_card_from_everyone(h: Harness) -> None:
    """§5.4/§12: the emulator can follow the contract's reading (hide from all) when configured."""
    h.state.finish_hides_card_for_all = True
    call_id = h.register()["CALL_ID"]
    h.ok("telephony.externalcall.show", {"CALL_ID": call_id, "USER_ID": [3, 5]})
    h.finish(call_id, USER_ID=3)
    assert h.portal.cards_visible(call_id) == set()
    assert h.snap()["visible_cards"] == {}


def test_auto_created_lead_goes_to_whoever_finished_the_call(h: Harness) -> None:
    """§5.4 USER_ID: the finishing user becomes responsible for entities auto-created during the call."""
    result = h.register(USER_ID=2, CRM_CREATE=1)
    h.finish(result["CALL_ID"], USER_ID=3)
    assert h.portal.crm.leads[result["CRM_CREATED_LEAD"]].assigned_by_id == 3


def test_existing_entities_keep_their_responsible(h: Harness) -> None:
    """§5.4: "existing entities keep their responsible person"."""
    contact = h.portal.crm.add_contact("Мария", "Смирнова", phones=[CLIENT_PHONE], assigned_by_id=5)
    h.finish(h.register(USER_ID=2)["CALL_ID"], USER_ID=3)
    assert contact.assigned_by_id == 5


def test_finish_creates_the_crm_call_activity(h: Harness) -> None:
    """§10.2: a VOXIMPLANT_CALL activity bound to the call's entity, owned by the finishing user."""
    contact = h.portal.crm.add_contact("Иван", "Петров", phones=[CLIENT_PHONE])
    call_id = h.register(TYPE=1)["CALL_ID"]
    row = h.finish(call_id, USER_ID=3, DURATION=61)
    activity = h.portal.crm.activities[row["CRM_ACTIVITY_ID"]].to_dict()
    assert {
        k: activity[k]
        for k in (
            "provider_id",
            "provider_type_id",
            "owner_type",
            "owner_id",
            "responsible_id",
            "direction",
            "duration",
            "origin_id",
        )
    } == {
        "provider_id": "VOXIMPLANT_CALL",
        "provider_type_id": "CALL",
        "owner_type": "CONTACT",
        "owner_id": contact.id,
        "responsible_id": 3,
        "direction": 2,
        "duration": 61,
        "origin_id": "VI_" + call_id,
    }


def test_what_the_app_sent_is_recorded_exactly(h: Harness) -> None:
    """§12 snapshot: USER_ID, DURATION and ADD_TO_CHAT as sent (form values are strings), and whether
    DURATION/ADD_TO_CHAT were sent at all."""
    call_id = h.register()["CALL_ID"]
    h.ok(
        "telephony.externalcall.finish",
        {
            "CALL_ID": call_id,
            "USER_ID": "3",
            "DURATION": "95",
            "ADD_TO_CHAT": "0",
            "FAILED_REASON": "Busy here",
        },
        form=True,
    )
    finish = h.call(call_id)["finish"]
    assert {
        k: finish[k]
        for k in (
            "user_id_sent",
            "user_id",
            "duration_sent",
            "duration",
            "duration_was_sent",
            "add_to_chat_sent",
            "add_to_chat",
            "add_to_chat_was_sent",
            "failed_reason",
        )
    } == {
        "user_id_sent": "3",
        "user_id": 3,
        "duration_sent": "95",
        "duration": 95,
        "duration_was_sent": True,
        "add_to_chat_sent": "0",
        "add_to_chat": False,
        "add_to_chat_was_sent": True,
        "failed_reason": "Busy here",
    }


def test_add_to_chat_left_out_means_no_chat_message(h: Harness) -> None:
    """§5.4/§11.9: the module turns a missing ADD_TO_CHAT into false (the current doc says 1)."""
    silent = h.register()["CALL_ID"]
    h.ok("telephony.externalcall.finish", {"CALL_ID": silent, "USER_ID": 2})
    finish = h.call(silent)["finish"]
    assert (finish["add_to_chat"], finish["add_to_chat_was_sent"], finish["duration_was_sent"]) == (
        False,
        False,
        False,
    )
    loud = h.register(USER_ID=3)["CALL_ID"]
    h.finish(loud, USER_ID=3, ADD_TO_CHAT=1)
    assert [(m["call_id"], m["user_id"]) for m in h.snap()["chat_messages"]] == [(loud, 3)]


def test_add_to_chat_default_can_follow_the_current_doc(h: Harness) -> None:
    """§11.9: with finish_add_to_chat_default the missing parameter means 1."""
    h.state.finish_add_to_chat_default = True
    call_id = h.register()["CALL_ID"]
    h.ok("telephony.externalcall.finish", {"CALL_ID": call_id, "USER_ID": 2})
    assert h.call(call_id)["add_to_chat"] is True and len(h.snap()["chat_messages"]) == 1


def test_start_date_can_be_rendered_as_a_string(h: Harness) -> None:
    """§2.4: the {} date is a quirk of the documented example; switchable to the ISO string."""
    h.state.finish_start_date_as_object = False
    row = h.finish(h.register(CALL_START_DATE="2026-03-10T11:00:00+03:00")["CALL_ID"])
    assert row["CALL_START_DATE"] == "2026-03-10T11:00:00+03:00"


def test_finish_fires_call_end(h: Harness) -> None:
    """§10.4: ONVOXIMPLANTCALLEND with the statistics data, CALL_START_DATE in ISO-8601."""
    h.bind("ONVOXIMPLANTCALLEND")
    call_id = h.register(CALL_START_DATE="2026-03-10T11:00:00+03:00", LINE_NUMBER="74950000001")["CALL_ID"]
    row = h.finish(call_id, DURATION=0, FAILED_REASON="Call canceled")
    [event] = h.events("ONVOXIMPLANTCALLEND")
    assert event["data"] == {
        "CALL_ID": call_id,
        "CALL_TYPE": "2",
        "PHONE_NUMBER": CLIENT_PHONE,
        "PORTAL_NUMBER": "74950000001",
        "PORTAL_USER_ID": "2",
        "CALL_DURATION": "0",
        "CALL_START_DATE": "2026-03-10T11:00:00+03:00",
        "COST": "0",
        "COST_CURRENCY": "",
        "CALL_FAILED_CODE": "304",
        "CALL_FAILED_REASON": "Call canceled",
    }
    assert row["CRM_ACTIVITY_ID"] is None


def test_deprecated_record_url_is_downloaded_after_finish(h: Harness) -> None:
    """§5.4 RECORD_URL: Bitrix24 fetches it in the background; the recording lands on the call."""
    h.rsps.add(responses.GET, "https://pbx.example.test/rec/call-1.mp3", body=b"ID3\x03mp3-bytes", status=200)
    call_id = h.register()["CALL_ID"]
    h.finish(call_id, RECORD_URL="https://pbx.example.test/rec/call-1.mp3")
    recording = h.call(call_id)["recording"]
    assert (recording["filename"], recording["size"], recording["source"]) == (
        "call-1.mp3",
        13,
        "finish RECORD_URL",
    )


def test_failing_record_url_is_retried_once_and_dropped_silently(h: Harness) -> None:
    """§5.4: "Bitrix24 tries twice to download it and fails silently" — finish still succeeds."""
    url = "https://pbx.example.test/rec/missing.mp3"
    h.rsps.add(responses.GET, url, status=500)
    h.rsps.add(
        responses.GET, "https://pbx.example.test/rec/refused.mp3", body=requests.ConnectionError("refused")
    )
    call_id = h.register()["CALL_ID"]
    assert h.finish(call_id, RECORD_URL=url)["CALL_ID"] == call_id
    [failure] = h.snap()["failed_downloads"]
    assert failure["errors"] == ["Server returns HTTP error code 500"] * 2
    assert h.call(call_id)["recording"] is None
    other = h.register(USER_ID=3)["CALL_ID"]
    h.finish(other, USER_ID=3, RECORD_URL="https://pbx.example.test/rec/refused.mp3")
    assert h.snap()["failed_downloads"][1]["errors"] == ["NETWORK: Connection failed"] * 2


def test_finish_refuses_webhooks(h: Harness) -> None:
    """§5: finish is app-context only → 403 WRONG_AUTH_TYPE, the call stays open."""
    call_id = h.register()["CALL_ID"]
    code = h.sb.add_webhook(h.portal, 1, ["telephony"])
    status, error, _ = h.fail(
        "telephony.externalCall.finish", {"CALL_ID": call_id, "USER_ID": 2}, webhook=(1, code)
    )
    assert (status, error) == (403, "WRONG_AUTH_TYPE")
    assert h.call(call_id)["finished"] is False


def test_rest_app_id_identifies_the_app_on_every_row(h: Harness) -> None:
    """§5.4 REST_APP_ID/REST_APP_NAME: the same app id for all of this app's calls."""
    rows = [h.finish(h.register(USER_ID=u)["CALL_ID"], USER_ID=u) for u in (2, 3)]
    assert {r["REST_APP_ID"] for r in rows} == {str(h.state.app_ids[CLIENT_ID])}
    assert [r["ID"] for r in rows] == [1, 2]
