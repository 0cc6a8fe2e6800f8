"""The portal's, its users' and its lines' settings in the pure state machine: what each one changes in
the Bitrix24 state a call leads to (the end-to-end proof per setting is tests/e2e/test_settings_e2e.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from calls.sync import state_machine as sm
from calls.sync.state_machine import Achieved, CallInput, Fact, Phase, Policy, StepKind

MSK = timezone(timedelta(hours=3))
T0 = datetime(2026, 3, 7, 10, 20, 30, tzinfo=MSK)
USERS = {"101": 11, "102": 12, "103": 13}
BASE = Policy(users_by_extension=USERS, default_user=1, installer_user=7)


def fact(seconds: int, type_: str, event_id: str | None = None, **data) -> Fact:
    return Fact(event_id=event_id or f"{type_}-{seconds}", type=type_, occurred_at=T0 + timedelta(seconds=seconds),
                data=data)


def inbound(**extra) -> Fact:
    return fact(0, sm.STARTED, direction="inbound", client_number="+79165551234", line_number="+74951234567",
                **extra)


def outbound(ext: str = "101") -> Fact:
    return fact(0, sm.STARTED, direction="outbound", client_number="+79165551234", line_number="+74951234567",
                extension=ext)


def derive(*facts: Fact, policy: Policy = BASE, **kw) -> sm.Desired:
    return sm.derive(CallInput(facts=tuple(facts), **kw), policy)


MISSED = (inbound(), fact(1, sm.RINGING, extensions=["101", "102"]), fact(5, sm.RINGING, extensions=["103", "102"]),
          fact(30, sm.ENDED, disposition="no_answer", talk_seconds=0))


# --- CRM_CREATE per direction --------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "incoming", "outgoing", "callback"), [
    ("off", 0, 0, 0), ("incoming", 1, 0, 1), ("outgoing", 0, 1, 0), ("both", 1, 1, 1),
])
def test_crm_create_follows_the_direction_setting(mode, incoming, outgoing, callback):
    policy = replace(BASE, crm_create=mode)
    assert derive(inbound(extension="101"), policy=policy).register["CRM_CREATE"] == incoming
    assert derive(outbound(), policy=policy).register["CRM_CREATE"] == outgoing
    as_callback = derive(outbound(), policy=policy, origin=sm.ORIGIN_CALLBACK, origin_user_id=11)
    assert (as_callback.register["TYPE"], as_callback.register["CRM_CREATE"]) == (4, callback)


# --- the missed-call owner -------------------------------------------------------------------------------


def test_fixed_strategy_finishes_a_missed_call_under_the_chosen_user():
    desired = derive(*MISSED, policy=replace(BASE, missed_call_strategy="fixed", missed_call_user=99))
    assert (desired.finish["USER_ID"], desired.finish["STATUS_CODE"], desired.finish_user_source) == (99, "304",
                                                                                                     "strategy")
    assert not desired.needs_client_responsible


def test_last_rang_strategy_takes_the_first_agent_of_the_last_ring_wave():
    desired = derive(*MISSED, policy=replace(BASE, missed_call_strategy="last_rang"))
    assert desired.finish["USER_ID"] == 13


def test_last_rang_skips_agents_whose_calls_are_not_registered_and_extensions_nobody_owns():
    policy = replace(BASE, missed_call_strategy="last_rang", users_not_registered=frozenset({13}),
                     users_by_extension={"102": 12, "103": 13})
    facts = (inbound(), fact(1, sm.RINGING, extensions=["102"]), fact(5, sm.RINGING, extensions=["555", "103"]),
             fact(30, sm.ENDED, disposition="no_answer", talk_seconds=0))
    assert derive(*facts, policy=policy).finish["USER_ID"] == 12


def test_responsible_strategy_asks_for_the_clients_manager_before_finishing():
    policy = replace(BASE, missed_call_strategy="responsible")
    desired = derive(*MISSED, policy=policy)
    assert desired.needs_client_responsible
    # Without the answer the finish is held (the reader looks the manager up and derives again).
    steps = sm.plan(desired, Achieved(b24_call_id="c", line_registered=True))
    assert StepKind.FINISH not in [s.kind for s in steps]

    known = derive(*MISSED, policy=replace(policy, client_responsible=42, client_responsible_known=True))
    assert (known.finish["USER_ID"], known.finish_user_source) == (42, "strategy")
    assert StepKind.FINISH in [s.kind for s in sm.plan(known, Achieved(b24_call_id="c", line_registered=True))]


@pytest.mark.parametrize(("policy_changes", "owner", "link"), [
    ({"line_missed_call_owner": 50}, 50, "line"),  # nobody by the strategy: the line's owner
    ({}, 1, "portal_default"),  # no line owner: the portal's default user
    ({"default_user": None}, 7, "installer"),  # no default user: the installing admin
    ({"line_missed_call_owner": 50, "users_not_registered": frozenset({50})}, 1, "portal_default"),
])
def test_fallback_chain_when_the_strategy_names_nobody(policy_changes, owner, link):
    policy = replace(BASE, missed_call_strategy="responsible", client_responsible=None, client_responsible_known=True,
                     **policy_changes)
    desired = derive(*MISSED, policy=policy)
    assert (desired.finish["USER_ID"], desired.finish_user_source) == (owner, link)


def test_the_chain_is_the_documented_order():
    assert sm.MISSED_CALL_OWNER_CHAIN == ("strategy", "line", "portal_default", "installer")


def test_answered_and_outgoing_calls_do_not_use_the_missed_call_owner():
    policy = replace(BASE, missed_call_strategy="fixed", missed_call_user=99)
    answered = derive(inbound(), fact(1, sm.RINGING, extensions=["101"]), fact(3, sm.ANSWERED, extension="101"),
                      fact(30, sm.ENDED, disposition="answered", talk_seconds=27), policy=policy)
    assert (answered.finish["USER_ID"], answered.finish_user_source) == (11, "answered")
    busy = derive(outbound("102"), fact(3, sm.ENDED, disposition="busy", talk_seconds=0), policy=policy)
    assert (busy.finish["USER_ID"], busy.finish_user_source) == (12, "dialled")


# --- per line --------------------------------------------------------------------------------------------


def test_a_switched_off_line_is_not_registered_unless_bitrix24_has_the_call_already():
    policy = replace(BASE, line_enabled=False)
    desired = derive(inbound(extension="101"), fact(1, sm.RINGING, extensions=["101"]), policy=policy)
    assert desired.skip_reason == "the line is switched off"
    assert sm.plan(desired, Achieved()) == []
    # Registered before the line was switched off: the card and the finish still happen.
    steps = sm.plan(desired, Achieved(b24_call_id="c", line_registered=True))
    assert [s.kind for s in steps] == [StepKind.CARDS]


def test_line_crm_source_and_default_user():
    policy = replace(BASE, line_crm_source="CALL", line_default_user=33)
    desired = derive(inbound(), policy=policy)
    assert (desired.register["CRM_SOURCE"], desired.register["USER_ID"]) == ("CALL", 33)
    assert "CRM_SOURCE" not in derive(inbound()).register


# --- per user: registration -------------------------------------------------------------------------------


def test_an_outgoing_call_of_a_user_whose_calls_are_not_registered_is_not_registered():
    policy = replace(BASE, users_not_registered=frozenset({11}))
    desired = derive(outbound("101"), fact(9, sm.ENDED, disposition="answered", talk_seconds=9), policy=policy)
    assert desired.skip_reason == "calls of user 11 are not registered"
    assert sm.plan(desired, Achieved()) == []


def test_a_ring_group_call_is_registered_without_the_user_whose_calls_are_not():
    policy = replace(BASE, users_not_registered=frozenset({11}))
    facts = [inbound(extension="101"), fact(1, sm.RINGING, extensions=["101"])]
    only_them = derive(*facts, policy=policy)
    assert only_them.skip_reason  # nobody else is involved yet: not registered (yet)
    facts.append(fact(10, sm.RINGING, extensions=["101", "102"]))
    desired = derive(*facts, policy=policy)
    assert desired.skip_reason == ""
    assert desired.register["USER_ID"] == 1  # the first target is theirs: the portal's default user
    assert desired.cards == {12}  # the user whose calls are not registered sees no card
    facts += [fact(12, sm.ANSWERED, extension="101"), fact(40, sm.ENDED, disposition="answered", talk_seconds=28)]
    ended = derive(*facts, policy=policy)
    assert (ended.finish["USER_ID"], ended.finish["STATUS_CODE"]) == (1, "200")  # they answered: not under them


def test_click_to_call_of_a_user_whose_calls_are_not_registered_is_still_finished():
    policy = replace(BASE, users_not_registered=frozenset({11}))
    desired = derive(outbound("101"), fact(20, sm.ENDED, disposition="answered", talk_seconds=15), policy=policy,
                     origin=sm.ORIGIN_CLICK_TO_CALL, origin_user_id=11)
    assert desired.skip_reason == ""
    assert desired.finish["USER_ID"] == 11


# --- per user: card mode ----------------------------------------------------------------------------------


RING_THEN_ANSWER = (inbound(), fact(1, sm.RINGING, extensions=["101", "102"]), fact(5, sm.ANSWERED, extension="102"))


@pytest.mark.parametrize(("mode", "while_ringing", "after_answer"), [
    ("ring", {11, 12}, {12}), ("answer", {11}, {12}), ("never", {11}, set()),
])
def test_card_mode_decides_when_the_users_card_opens(mode, while_ringing, after_answer):
    policy = replace(BASE, card_modes={12: mode})
    assert derive(*RING_THEN_ANSWER[:2], policy=policy).cards == while_ringing
    assert derive(*RING_THEN_ANSWER, policy=policy).cards == after_answer


def test_answer_mode_on_an_outgoing_call_opens_the_card_when_the_call_is_answered():
    policy = replace(BASE, card_modes={11: "answer"})
    assert derive(outbound("101"), policy=policy).cards == set()
    assert derive(outbound("101"), fact(4, sm.ANSWERED, extension="101"), policy=policy).cards == {11}


def test_answer_mode_consultation_target_sees_the_card_only_once_they_pick_up():
    policy = replace(BASE, card_modes={13: "answer"})
    talking = [inbound(), fact(1, sm.RINGING, extensions=["101"]), fact(3, sm.ANSWERED, extension="101")]
    assert derive(*talking, fact(20, sm.RINGING, extensions=["103"]), policy=policy).cards == {11}
    assert derive(*talking, fact(20, sm.RINGING, extensions=["103"]), fact(25, sm.ANSWERED, extension="103"),
                  policy=policy).cards == {11, 13}


# --- recordings -------------------------------------------------------------------------------------------


def test_recordings_off_attaches_nothing():
    facts = (outbound(), fact(3, sm.ANSWERED, extension="101"), fact(30, sm.ENDED, disposition="answered",
                                                                     talk_seconds=27),
             fact(35, sm.RECORDING_READY, url="https://pbx/rec.wav"))
    done = Achieved(b24_call_id="c", finished=True)
    assert [s.kind for s in sm.plan(derive(*facts), done)] == [StepKind.ATTACH_RECORDING]
    assert sm.plan(derive(*facts, policy=replace(BASE, recordings=False)), done) == []


def test_phase_of_a_skipped_call_is_still_its_real_phase():
    desired = derive(outbound("101"), policy=replace(BASE, line_enabled=False))
    assert desired.phase is Phase.LIVE and desired.skip_reason
