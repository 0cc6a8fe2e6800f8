"""Whatever order the PBX's events arrive in, and however often, Bitrix24 ends in the same state.

A property test: for each scripted call, every arrival order (with duplicates) is replayed through
derive → plan → execute against a small model of Bitrix24's telephony (register, show/hide, finish that
closes only the finishing user's card, attachRecord), and the end state must equal the in-order one,
with exactly one register and one finish. Stragglers are assumed to arrive within the finish's settle
window (``finish_wait``); the last test shows what a straggler later than that can and cannot change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from calls.sync import state_machine as sm
from calls.sync.state_machine import Achieved, CallInput, Fact, Policy, StepKind

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
POLICY = Policy(users_by_extension={"101": 11, "102": 12, "103": 13}, missed_call_strategy="fixed", missed_call_user=99, default_user=1)


def f(sec: int, type_: str, **data) -> Fact:
    return Fact(f"{type_}@{sec}", type_, T0 + timedelta(seconds=sec), data)


INBOUND = {"direction": "inbound", "client_number": "+74951112233", "line_number": "+74950000000"}
SCENARIOS = {
    "ring_group_second_answers": [
        f(0, sm.STARTED, **INBOUND), f(1, sm.RINGING, extensions=["101", "102"]), f(6, sm.ANSWERED, extension="102"),
        f(66, sm.ENDED, disposition="answered", talk_seconds=60),
        f(90, sm.RECORDING_READY, url="https://pbx.example/r.mp3", filename="r.mp3"),
    ],
    "missed": [
        f(0, sm.STARTED, **INBOUND), f(1, sm.RINGING, extensions=["101", "102", "103"]),
        f(30, sm.ENDED, disposition="no_answer", talk_seconds=0),
    ],
    "busy_outgoing": [
        f(0, sm.STARTED, direction="outbound", client_number="+74951112233", extension="103"),
        f(4, sm.ENDED, disposition="busy", talk_seconds=0),
    ],
    "blind_transfer": [
        f(0, sm.STARTED, **INBOUND), f(1, sm.RINGING, extensions=["101"]), f(3, sm.ANSWERED, extension="101"),
        f(20, sm.TRANSFERRED, from_extension="101", to_extension="102", kind="blind"),
        f(24, sm.ANSWERED, extension="102"), f(80, sm.ENDED, disposition="answered", talk_seconds=77),
    ],
    "attended_transfer": [
        f(0, sm.STARTED, **INBOUND), f(1, sm.RINGING, extensions=["101"]), f(3, sm.ANSWERED, extension="101"),
        f(20, sm.RINGING, extensions=["103"]), f(23, sm.ANSWERED, extension="103"),
        f(40, sm.TRANSFERRED, from_extension="101", to_extension="103", kind="attended"),
        f(99, sm.ENDED, disposition="answered", talk_seconds=96),
        f(100, sm.RECORDING_READY, url="https://pbx.example/a.mp3"),
    ],
}


@dataclass
class FakeBitrix24:
    registrations: int = 0
    register_params: dict | None = None
    finishes: list[dict] = field(default_factory=list)
    cards: set[int] = field(default_factory=set)
    recording: str | None = None

    def run(self, step: sm.Step, desired: sm.Desired, achieved: Achieved) -> Achieved:
        if step.kind is StepKind.REGISTER:
            self.registrations += 1
            self.register_params = dict(desired.register)
        elif step.kind is StepKind.CARDS:
            assert not self.finishes, "no card may change after finish"
            self.cards = (self.cards | step.show) - step.hide
        elif step.kind is StepKind.FINISH:
            self.finishes.append(dict(desired.finish))
            self.cards.discard(desired.finish["USER_ID"])
        elif step.kind is StepKind.ATTACH_RECORDING:
            assert self.finishes, "attachRecord needs a finished call"
            self.recording = desired.recording.event_id
        return sm.achieved_after(step, achieved, recording_key=desired.recording.event_id if desired.recording else None)

    def end_state(self) -> tuple:
        return (self.registrations, self.register_params and sorted(self.register_params.items()),
                [sorted(x.items()) for x in self.finishes], sorted(self.cards), self.recording)


def replay(arrivals: list[Fact], *, settle_after: int | None = None) -> FakeBitrix24:
    """Feed events one by one; the finish is held until ``settle_after`` arrivals (default: all)."""
    b24 = FakeBitrix24()
    achieved = Achieved()
    known: list[Fact] = []
    settle_after = len(arrivals) if settle_after is None else settle_after
    for n, event in enumerate(arrivals, start=1):
        if event not in known:
            known.append(event)
        desired = sm.derive(CallInput(facts=tuple(known)), POLICY)
        hold = n < settle_after
        for step in sm.plan(desired, achieved, hold_finish=hold):
            achieved = b24.run(step, desired, achieved)
        assert sm.plan(desired, achieved, hold_finish=hold) == []
    return b24


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(SCENARIOS)), data=st.data())
def test_any_arrival_order_with_duplicates_gives_the_in_order_bitrix24_state(name, data):
    events = SCENARIOS[name]
    arrivals = data.draw(st.permutations(events))
    duplicates = data.draw(st.lists(st.sampled_from(events), max_size=4))
    for dup in duplicates:
        arrivals.insert(data.draw(st.integers(0, len(arrivals))), dup)
    expected = replay(events).end_state()
    got = replay(arrivals)
    assert got.end_state() == expected
    assert got.registrations == 1
    assert len(got.finishes) == 1
    assert got.cards == set()


def test_in_order_scenarios_end_as_a_user_would_expect():
    assert replay(SCENARIOS["ring_group_second_answers"]).finishes == [
        {"USER_ID": 12, "DURATION": 60, "STATUS_CODE": "200", "ADD_TO_CHAT": 1}]
    assert replay(SCENARIOS["missed"]).finishes[0]["USER_ID"] == 99
    assert replay(SCENARIOS["busy_outgoing"]).finishes[0]["STATUS_CODE"] == "486"
    assert replay(SCENARIOS["blind_transfer"]).finishes[0]["USER_ID"] == 12
    attended = replay(SCENARIOS["attended_transfer"])
    assert attended.finishes[0]["USER_ID"] == 13
    assert attended.recording == "call.recording_ready@100"


def test_a_straggler_after_the_settle_window_cannot_reassign_a_finished_call_but_changes_nothing_else():
    events = SCENARIOS["blind_transfer"]
    started, ringing, answered_101, transferred, answered_102, ended = events
    late = replay([started, ringing, answered_101, transferred, ended, answered_102], settle_after=5)
    assert late.registrations == 1 and len(late.finishes) == 1
    # Finished while only 101 was known to have talked; the late answer of 102 cannot move it.
    assert late.finishes[0]["USER_ID"] == 11
    assert late.cards == set()
