"""telephony.call.attachTranscription on the sandbox portal (docs/bitrix24-contract.md §5.8, §10.3)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from test_telephony_harness import Harness

GOOD = [
    {"SIDE": "User", "START_TIME": 1, "STOP_TIME": 3, "MESSAGE": "Good afternoon"},
    {"SIDE": "Client", "START_TIME": 4, "STOP_TIME": 7, "MESSAGE": "Hello"},
]


@pytest.fixture
def h() -> Iterator[Harness]:
    with Harness.start() as harness:
        yield harness


def test_transcript_of_a_finished_call_is_stored(h: Harness) -> None:
    """§5.8: result {"TRANSCRIPT_ID": n}; the lines are kept on the call."""
    call_id = h.finished_call()
    result = h.ok(
        "telephony.call.attachTranscription",
        {"CALL_ID": call_id, "MESSAGES": GOOD, "COST": 0.5, "COST_CURRENCY": "USD"},
    )
    assert result == {"TRANSCRIPT_ID": 1}
    [transcript] = h.call(call_id)["transcripts"]
    assert (transcript["messages"], transcript["cost"], transcript["cost_currency"]) == (GOOD, 0.5, "USD")


def test_form_encoded_messages_are_accepted(h: Harness) -> None:
    """§2.1: MESSAGES[0][SIDE]=User… works like JSON."""
    call_id = h.finished_call()
    assert h.ok("telephony.call.attachtranscription", {"CALL_ID": call_id, "MESSAGES": GOOD}, form=True) == {
        "TRANSCRIPT_ID": 1
    }
    assert h.call(call_id)["transcripts"][0]["messages"] == GOOD


def test_unfinished_call_is_not_found(h: Harness) -> None:
    """§5.8: "Call {CALL_ID} is not found. Is it finished?" before finish."""
    call_id = h.register()["CALL_ID"]
    assert h.fail("telephony.call.attachtranscription", {"CALL_ID": call_id, "MESSAGES": GOOD}) == (
        400,
        "",
        f"Call {call_id} is not found. Is it finished?",
    )
    assert h.call(call_id)["transcripts"] == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"MESSAGES": GOOD}, "CALL_ID should be set"),
        ({"CALL_ID": "c"}, "MESSAGES should be an array"),
        ({"CALL_ID": "c", "MESSAGES": "hello"}, "MESSAGES should be an array"),
        (
            {"CALL_ID": "c", "MESSAGES": [{**GOOD[0], "SIDE": "Agent"}]},
            "MESSAGES[0][SIDE] should be either Client or User",
        ),
        (
            {"CALL_ID": "c", "MESSAGES": [GOOD[0], {**GOOD[1], "SIDE": "client"}]},
            "MESSAGES[1][SIDE] should be either Client or User",
        ),
        (
            {"CALL_ID": "c", "MESSAGES": [{**GOOD[0], "START_TIME": -1}]},
            "MESSAGES[0][START_TIME] should be greater or equal to zero",
        ),
        (
            {"CALL_ID": "c", "MESSAGES": [{**GOOD[0], "STOP_TIME": 0}]},
            "MESSAGES[0][STOP_TIME] should be greater than zero",
        ),
        ({"CALL_ID": "c", "MESSAGES": [{**GOOD[0], "MESSAGE": ""}]}, "MESSAGES[0][MESSAGE] is empty"),
        ({"CALL_ID": "c", "MESSAGES": ["just text"]}, "MESSAGES[0][SIDE] should be either Client or User"),
    ],
)
def test_messages_are_validated_before_the_call_is_looked_up(
    h: Harness, params: dict[str, object], message: str
) -> None:
    """§5.8: the documented messages, naming the offending index."""
    assert h.fail("telephony.call.attachtranscription", params) == (400, "", message)


def test_each_attach_adds_a_transcript(h: Harness) -> None:
    """§5.8: ids increase per portal; the call lists all its transcripts."""
    call_id = h.finished_call()
    ids = [
        h.ok("telephony.call.attachtranscription", {"CALL_ID": call_id, "MESSAGES": GOOD})["TRANSCRIPT_ID"]
        for _ in range(2)
    ]
    assert ids == [1, 2] and len(h.call(call_id)["transcripts"]) == 2
