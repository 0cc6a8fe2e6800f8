"""The telephony snapshot product tests assert on, and tenant isolation (docs/bitrix24-contract.md §12)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from test_telephony_harness import CLIENT_PHONE, Harness


@pytest.fixture
def h() -> Iterator[Harness]:
    with Harness.start() as harness:
        yield harness


def test_snapshot_tells_the_whole_story_of_a_call_and_is_json(h: Harness) -> None:
    """§12: per call — ids, type, numbers, line, users, start date as sent, finish data, recording, viewers and
    the ordered history of register/show/hide/finish/record — as plain JSON."""
    call_id = h.register(
        EXTERNAL_CALL_ID="pbx-1", LINE_NUMBER="74950000001", CALL_START_DATE="2026-03-10T11:06:00+03:00"
    )["CALL_ID"]
    h.ok("telephony.externalcall.show", {"CALL_ID": call_id, "USER_ID": [3, 5]})
    h.ok("telephony.externalcall.hide", {"CALL_ID": call_id, "USER_ID": [5]})
    h.finish(call_id, USER_ID=3, DURATION=33, STATUS_CODE="200", ADD_TO_CHAT=1)
    h.ok(
        "telephony.externalcall.attachrecord",
        {"CALL_ID": call_id, "FILENAME": "a.mp3", "FILE_CONTENT": "SUQz"},
    )

    snap = json.loads(json.dumps(h.snap()))
    [call] = snap["calls"]
    assert {
        k: call[k]
        for k in (
            "call_id",
            "external_call_id",
            "type",
            "phone_number",
            "line_number",
            "user_id",
            "call_start_date",
            "finished",
            "finish_user_id",
            "status_code",
            "duration",
            "add_to_chat",
            "failed_reason",
            "visible_to",
        )
    } == {
        "call_id": call_id,
        "external_call_id": "pbx-1",
        "type": 2,
        "phone_number": CLIENT_PHONE,
        "line_number": "74950000001",
        "user_id": 2,
        "call_start_date": "2026-03-10T11:06:00+03:00",
        "finished": True,
        "finish_user_id": 3,
        "status_code": "200",
        "duration": 33,
        "add_to_chat": True,
        "failed_reason": "",
        "visible_to": [2],
    }
    assert {k: call["recording"][k] for k in ("filename", "size")} == {"filename": "a.mp3", "size": 3}
    assert [e["op"] for e in call["history"]] == ["register", "show", "show", "hide", "finish", "record"]
    assert snap["visible_cards"] == {call_id: [2]}
    assert snap["lines"][0]["number"] == "74950000001"


def test_portal_cards_visible_follows_the_snapshot(h: Harness) -> None:
    """``portal.cards_visible(call_id)`` answers who sees a card now."""
    call_id = h.register()["CALL_ID"]
    h.ok("telephony.externalcall.show", {"CALL_ID": call_id, "USER_ID": 5})
    assert h.portal.cards_visible(call_id) == {2, 5}
    assert h.portal.cards_visible("externalCall.unknown.1") == set()


def test_one_portal_cannot_touch_another_portals_calls(h: Harness) -> None:
    """Tenant isolation: a CALL_ID from portal A is unknown on portal B (same app, same sandbox) for finish,
    show, hide, records and transcripts; A's call is untouched."""
    call_id = h.register()["CALL_ID"]
    other, token = h.second_portal()
    on_b = {"token": token, "domain": other.domain}
    assert h.fail("telephony.externalcall.finish", {"CALL_ID": call_id, "USER_ID": 2}, **on_b)[2].startswith(
        "Call is not found"
    )
    assert h.ok("telephony.externalcall.show", {"CALL_ID": call_id, "USER_ID": 3}, **on_b) is False
    assert h.ok("telephony.externalcall.hide", {"CALL_ID": call_id}, **on_b) is False
    h.finish(call_id)
    assert h.fail(
        "telephony.externalcall.attachrecord",
        {"CALL_ID": call_id, "FILENAME": "a.mp3", "FILE_CONTENT": "SUQz"},
        **on_b,
    )[2].startswith("Call is not found in the statistic table")
    assert h.fail(
        "telephony.call.attachtranscription",
        {
            "CALL_ID": call_id,
            "MESSAGES": [{"SIDE": "User", "START_TIME": 0, "STOP_TIME": 1, "MESSAGE": "hi"}],
        },
        **on_b,
    )[2].endswith("Is it finished?")
    assert other.telephony.calls == {} and other.telephony.statistics == {}
    assert h.call(call_id)["recording"] is None and h.call(call_id)["finish_user_id"] == 2


def test_a_token_of_one_portal_is_useless_on_another(h: Harness) -> None:
    """Tenant isolation: portal B refuses portal A's access token before any telephony code runs."""
    other, _ = h.second_portal("gamma.bitrix24.test")
    status, error, _ = h.fail(
        "telephony.externalcall.register",
        {"USER_ID": 2, "PHONE_NUMBER": CLIENT_PHONE, "TYPE": 2},
        domain=other.domain,
    )
    assert (status, error) == (401, "NO_AUTH_FOUND")
    assert other.telephony.calls == {}
