"""telephony.externalCall.show / .hide on the sandbox portal (docs/bitrix24-contract.md §5.6, §6.3, §12)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from test_telephony_harness import Harness


@pytest.fixture
def h() -> Iterator[Harness]:
    with Harness.start() as harness:
        yield harness


@pytest.fixture
def call_id(h: Harness) -> str:
    return h.register(SHOW=0)["CALL_ID"]


def test_show_and_hide_accept_a_single_user(h: Harness, call_id: str) -> None:
    """§5.6: USER_ID as an int; result true."""
    assert h.ok("telephony.externalcall.show", {"CALL_ID": call_id, "USER_ID": 3}) is True
    assert h.portal.cards_visible(call_id) == {3}
    assert h.ok("telephony.externalcall.hide", {"CALL_ID": call_id, "USER_ID": "3"}) is True
    assert h.portal.cards_visible(call_id) == set()


def test_show_and_hide_accept_a_list_in_json(h: Harness, call_id: str) -> None:
    """§5.6: {"USER_ID": [1269, 1270]} — simultaneous ring, then hide from those who did not answer."""
    h.ok("telephony.externalcall.show", {"CALL_ID": call_id, "USER_ID": [1, 2, 3, 5]})
    h.ok("telephony.externalcall.hide", {"CALL_ID": call_id, "USER_ID": [1, 3, 5]})
    assert h.portal.cards_visible(call_id) == {2}


def test_show_and_hide_accept_php_array_form_encoding(h: Harness, call_id: str) -> None:
    """§5.6: form encoding USER_ID[]=1269&USER_ID[]=1270."""
    h.ok("telephony.externalcall.show", {"CALL_ID": call_id, "USER_ID": [2, 5]}, form=True)
    assert h.portal.cards_visible(call_id) == {2, 5}
    h.ok("telephony.externalcall.hide", {"CALL_ID": call_id, "USER_ID": [5]}, form=True)
    assert h.portal.cards_visible(call_id) == {2}


def test_without_user_id_the_registering_user_is_meant(h: Harness) -> None:
    """§5.6: show defaults to the registering user; so does hide."""
    call_id = h.register(USER_ID=3, SHOW=0)["CALL_ID"]
    h.ok("telephony.externalcall.show", {"CALL_ID": call_id})
    assert h.portal.cards_visible(call_id) == {3}
    h.ok("telephony.externalcall.hide", {"CALL_ID": call_id})
    assert h.portal.cards_visible(call_id) == set()


def test_unknown_call_answers_false_and_changes_nothing(h: Harness, call_id: str) -> None:
    """§5.6: result false = call not found; hide has no errors of its own."""
    assert h.ok("telephony.externalcall.show", {"CALL_ID": "externalCall.unknown.1", "USER_ID": 2}) is False
    assert h.ok("telephony.externalcall.hide", {"CALL_ID": "externalCall.unknown.1", "USER_ID": 2}) is False
    assert h.ok("telephony.externalcall.show", {"USER_ID": 2}) is False
    assert h.snap()["visible_cards"] == {}


def test_sequential_ring_history_is_recorded(h: Harness, call_id: str) -> None:
    """§5.6/§12: per call, every show/hide with its users and the acting token user, in order."""
    for user in (2, 3):
        h.ok("telephony.externalcall.show", {"CALL_ID": call_id, "USER_ID": user})
        h.advance(15)
        h.ok("telephony.externalcall.hide", {"CALL_ID": call_id, "USER_ID": user})
    history = [(e["op"], e.get("users")) for e in h.call(call_id)["history"]]
    assert history == [("register", None), ("show", [2]), ("hide", [2]), ("show", [3]), ("hide", [3])]
    times = [e["at"] for e in h.call(call_id)["history"]]
    assert times == sorted(times) and times[-1] - times[0] == 30
    assert {e.get("by_user_id") for e in h.call(call_id)["history"]} == {1}


def test_cards_of_different_calls_are_independent(h: Harness, call_id: str) -> None:
    """§12: the snapshot's visible_cards maps each CALL_ID to its own viewers."""
    other = h.register(PHONE_NUMBER="+74950001122", USER_ID=3)["CALL_ID"]
    h.ok("telephony.externalcall.show", {"CALL_ID": call_id, "USER_ID": [2, 5]})
    assert h.snap()["visible_cards"] == {call_id: [2, 5], other: [3]}


def test_show_and_hide_work_with_webhooks(h: Harness, call_id: str) -> None:
    """§5: show/hide are not app-only; an inbound webhook may drive the card of the app's call."""
    code = h.sb.add_webhook(h.portal, 1, ["telephony"])
    assert h.ok("telephony.externalCall.show", {"CALL_ID": call_id, "USER_ID": 5}, webhook=(1, code)) is True
    assert h.portal.cards_visible(call_id) == {5}


def test_card_methods_need_the_telephony_scope(h: Harness, call_id: str) -> None:
    """§2.3: insufficient_scope (403) without "telephony"."""
    code = h.sb.add_webhook(h.portal, 1, ["crm"])
    status, error, _ = h.fail(
        "telephony.externalcall.show", {"CALL_ID": call_id, "USER_ID": 5}, webhook=(1, code)
    )
    assert (status, error) == (403, "insufficient_scope")
    assert h.portal.cards_visible(call_id) == set()
