"""The pure call state machine: what Bitrix24 state each set of PBX facts leads to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from calls.sync import state_machine as sm
from calls.sync.state_machine import Achieved, CallInput, Fact, ForcedEnd, Phase, Policy, StepKind

MSK = timezone(timedelta(hours=3))
T0 = datetime(2026, 3, 7, 10, 20, 30, tzinfo=MSK)
USERS = {"101": 11, "102": 12, "103": 13}
LINE = "+74951234567"  # the PBX declared it: a company line
POLICY = Policy(default_country="RU", users_by_extension=USERS, missed_call_strategy="fixed", missed_call_user=99,
                default_user=1, company_lines=frozenset({LINE}))


def fact(seconds: int, type_: str, event_id: str | None = None, **data) -> Fact:
    return Fact(event_id=event_id or f"{type_}-{seconds}", type=type_, occurred_at=T0 + timedelta(seconds=seconds),
                data=data)


def inbound_started(**extra) -> Fact:
    data = {"direction": "inbound", "client_number": "8 (916) 555-12-34", "line_number": "+7 495 123-45-67"}
    data.update(extra)
    return fact(0, sm.STARTED, **data)


def outbound_started(ext: str = "101") -> Fact:
    return fact(0, sm.STARTED, direction="outbound", client_number="+7 916 555 12 34",
                line_number="74951234567", extension=ext)


def derive(*facts: Fact, policy: Policy = POLICY, **kw) -> sm.Desired:
    return sm.derive(CallInput(facts=tuple(facts), **kw), policy)


# --- registration ----------------------------------------------------------------------------------


def test_incoming_call_registers_type_2_with_normalised_numbers_line_and_start_offset():
    desired = derive(inbound_started(extension="101"))
    assert desired.phase is Phase.LIVE
    assert desired.register == {
        "USER_ID": 11,
        "PHONE_NUMBER": "+79165551234",
        "TYPE": 2,
        "CALL_START_DATE": "2026-03-07T10:20:30+03:00",
        "CRM_CREATE": 1,
        "SHOW": 0,
        "ADD_TO_CHAT": 1,
        "LINE_NUMBER": "+74951234567",
    }
    assert desired.line == "+74951234567"


def test_a_line_no_pbx_declared_is_left_out_of_the_registration_and_never_added():
    desired = derive(inbound_started(extension="101", line_number="+7 916 000-11-22"))
    assert "LINE_NUMBER" not in desired.register
    assert desired.line is None and desired.undeclared_line == "+79160001122"
    assert [s.kind for s in sm.plan(desired, Achieved())] == [StepKind.REGISTER]


def test_a_callback_from_an_undeclared_line_is_registered_without_one():
    started = fact(0, sm.STARTED, direction="outbound", client_number="+79165551234",
                   line_number="8 (916) 555-12-34", extension="101", origin_request_id="r1")
    desired = derive(started, origin=sm.ORIGIN_CALLBACK, origin_user_id=11)
    assert desired.register["TYPE"] == 4 and "LINE_NUMBER" not in desired.register
    assert desired.undeclared_line == "+79165551234"
    assert StepKind.ENSURE_LINE not in [s.kind for s in sm.plan(desired, Achieved())]


def test_outgoing_call_registers_type_1_under_the_dialling_agent_without_line_number():
    desired = derive(outbound_started("102"))
    assert desired.register["TYPE"] == 1
    assert desired.register["USER_ID"] == 12
    assert "LINE_NUMBER" not in desired.register
    assert desired.line is None


def test_crm_create_follows_the_portal_setting():
    desired = derive(inbound_started(), policy=Policy(users_by_extension=USERS, default_user=1, crm_create="off"))
    assert desired.register["CRM_CREATE"] == 0


def test_incoming_call_without_known_first_target_registers_under_the_default_user():
    assert derive(inbound_started()).register["USER_ID"] == 1


def test_unmapped_agent_extension_falls_back_and_is_reported():
    desired = derive(outbound_started("555"))
    assert desired.register["USER_ID"] == 1
    assert desired.unmapped_extensions == {"555"}


def test_start_date_in_utc_keeps_its_offset():
    started = Fact("s", sm.STARTED, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
                   {"direction": "inbound", "client_number": "+79165551234"})
    assert derive(started).register["CALL_START_DATE"] == "2026-01-02T03:04:05+00:00"


def test_calls_between_two_extensions_are_never_registered():
    internal = fact(0, sm.STARTED, direction="outbound", client_number="102", extension="101")
    desired = derive(internal, fact(5, sm.ENDED, disposition="answered", talk_seconds=3))
    assert desired.phase is Phase.IGNORED
    assert sm.plan(desired, Achieved()) == []


def test_a_known_extension_longer_than_usual_is_still_internal():
    policy = Policy(users_by_extension={**USERS, "1234567": 14}, default_user=1)
    internal = fact(0, sm.STARTED, direction="inbound", client_number="1234567", extension="101")
    assert derive(internal, policy=policy).phase is Phase.IGNORED


def test_events_without_call_started_wait_for_it():
    desired = derive(fact(9, sm.ENDED, disposition="answered", talk_seconds=5))
    assert desired.phase is Phase.WAITING_FOR_START
    assert sm.plan(desired, Achieved()) == []


def test_call_ended_before_started_finishes_once_started_arrives():
    ended = fact(60, sm.ENDED, disposition="no_answer", talk_seconds=0)
    desired = derive(ended, inbound_started())
    assert desired.phase is Phase.ENDED
    assert [s.kind for s in sm.plan(desired, Achieved())] == [StepKind.ENSURE_LINE, StepKind.REGISTER,
                                                              StepKind.FINISH]


# --- cards ------------------------------------------------------------------------------------------


def test_ring_group_shows_the_card_to_every_ringing_agent():
    desired = derive(inbound_started(), fact(1, sm.RINGING, extensions=["101", "102"]))
    assert desired.cards == {11, 12}


def test_answer_keeps_the_card_only_with_the_answering_agent():
    desired = derive(inbound_started(), fact(1, sm.RINGING, extensions=["101", "102"]),
                     fact(4, sm.ANSWERED, extension="102"))
    assert desired.cards == {12}
    steps = sm.plan(desired, Achieved(b24_call_id="c", line_registered=True, cards_shown=frozenset({11, 12})))
    assert steps == [sm.Step(StepKind.CARDS, show=frozenset(), hide=frozenset({11}))]


def test_a_new_ringing_wave_replaces_the_previous_one():
    desired = derive(inbound_started(), fact(1, sm.RINGING, extensions=["101"]),
                     fact(15, sm.RINGING, extensions=["102", "103"]))
    assert desired.cards == {12, 13}


def test_unmapped_ringing_extensions_see_no_card():
    desired = derive(inbound_started(), fact(1, sm.RINGING, extensions=["101", "777"]))
    assert desired.cards == {11}
    assert desired.unmapped_extensions == {"777"}


def test_outgoing_call_shows_the_card_to_the_dialling_agent():
    assert derive(outbound_started("103")).cards == {13}


def test_blind_transfer_moves_the_card_from_the_transferer_to_the_target():
    base = (inbound_started(), fact(1, sm.RINGING, extensions=["101"]), fact(3, sm.ANSWERED, extension="101"))
    desired = derive(*base, fact(30, sm.TRANSFERRED, from_extension="101", to_extension="102", kind="blind"))
    assert desired.cards == {12}


def test_attended_transfer_shows_the_target_while_consulting_and_hides_the_transferer_when_done():
    base = (inbound_started(), fact(1, sm.RINGING, extensions=["101"]), fact(3, sm.ANSWERED, extension="101"))
    consulting = (*base, fact(30, sm.RINGING, extensions=["102"]))
    assert derive(*consulting).cards == {11, 12}
    talking_to_target = (*consulting, fact(33, sm.ANSWERED, extension="102"))
    assert derive(*talking_to_target).cards == {11, 12}
    done = (*talking_to_target, fact(40, sm.TRANSFERRED, from_extension="101", to_extension="102", kind="attended"))
    assert derive(*done).cards == {12}


def test_nobody_sees_the_card_after_the_call_ended():
    desired = derive(inbound_started(), fact(1, sm.RINGING, extensions=["101", "102"]),
                     fact(20, sm.ENDED, disposition="no_answer", talk_seconds=0))
    assert desired.cards == frozenset()
    steps = sm.plan(desired, Achieved(b24_call_id="c", line_registered=True, cards_shown=frozenset({11, 12})))
    # Finish closes only the finishing user's card (the missed-call owner, 99): every card is hidden
    # first, even while the finish itself waits for stragglers.
    assert steps == [sm.Step(StepKind.CARDS, hide=frozenset({11, 12})), sm.Step(StepKind.FINISH)]
    held = sm.plan(desired, Achieved(b24_call_id="c", line_registered=True, cards_shown=frozenset({11, 12})),
                   hold_finish=True)
    assert held == [sm.Step(StepKind.CARDS, hide=frozenset({11, 12}))]


def test_the_finishing_users_card_is_left_to_the_finish_and_only_the_others_are_hidden_before_it():
    desired = derive(inbound_started(), fact(1, sm.RINGING, extensions=["101", "102"]),
                     fact(4, sm.ANSWERED, extension="102"),
                     fact(64, sm.ENDED, disposition="answered", talk_seconds=60))
    # 12 answered and the call is finished under 12: finish closes 12's card; 11's is hidden first.
    steps = sm.plan(desired, Achieved(b24_call_id="c", line_registered=True, cards_shown=frozenset({11, 12})))
    assert steps == [sm.Step(StepKind.CARDS, hide=frozenset({11})), sm.Step(StepKind.FINISH)]
    # Only the finishing user sees it: no hide at all, the finish alone.
    alone = sm.plan(desired, Achieved(b24_call_id="c", line_registered=True, cards_shown=frozenset({12})))
    assert alone == [sm.Step(StepKind.FINISH)]
    assert sm.plan(desired, Achieved(b24_call_id="c", line_registered=True, cards_shown=frozenset({12})),
                   hold_finish=True) == []


# --- finish -----------------------------------------------------------------------------------------


def test_ring_group_answered_by_second_member_finishes_under_that_member_with_talk_time():
    desired = derive(inbound_started(), fact(1, sm.RINGING, extensions=["101", "102"]),
                     fact(4, sm.ANSWERED, extension="102"),
                     fact(64, sm.ENDED, disposition="answered", talk_seconds=60))
    assert desired.finish == {"USER_ID": 12, "DURATION": 60, "STATUS_CODE": "200", "ADD_TO_CHAT": 1}
    assert desired.answered_by == "102"


def test_missed_call_goes_to_the_missed_call_owner_once():
    desired = derive(inbound_started(extension="101"), fact(1, sm.RINGING, extensions=["101", "102", "103"]),
                     fact(30, sm.ENDED, disposition="no_answer", talk_seconds=0))
    assert desired.finish == {"USER_ID": 99, "DURATION": 0, "STATUS_CODE": "304", "ADD_TO_CHAT": 1}
    assert [s.kind for s in sm.plan(desired, Achieved(b24_call_id="c", line_registered=True))].count(
        StepKind.FINISH) == 1


def test_busy_outgoing_call_finishes_under_the_dialling_agent_with_486():
    desired = derive(outbound_started("101"), fact(8, sm.ENDED, disposition="busy", talk_seconds=0))
    assert desired.finish == {"USER_ID": 11, "DURATION": 0, "STATUS_CODE": "486", "ADD_TO_CHAT": 1}


def test_after_a_blind_transfer_the_target_who_answered_owns_the_call():
    desired = derive(inbound_started(), fact(3, sm.ANSWERED, extension="101"),
                     fact(30, sm.TRANSFERRED, from_extension="101", to_extension="102", kind="blind"),
                     fact(35, sm.ANSWERED, extension="102"),
                     fact(95, sm.ENDED, disposition="answered", talk_seconds=92))
    assert desired.finish["USER_ID"] == 12


def test_after_an_unanswered_blind_transfer_the_last_agent_who_talked_owns_the_call():
    desired = derive(inbound_started(), fact(3, sm.ANSWERED, extension="101"),
                     fact(30, sm.TRANSFERRED, from_extension="101", to_extension="102", kind="blind"),
                     fact(60, sm.ENDED, disposition="answered", talk_seconds=27))
    assert desired.finish["USER_ID"] == 11


def test_after_an_attended_transfer_the_target_owns_the_call():
    desired = derive(inbound_started(), fact(3, sm.ANSWERED, extension="101"),
                     fact(30, sm.RINGING, extensions=["102"]), fact(32, sm.ANSWERED, extension="102"),
                     fact(40, sm.TRANSFERRED, from_extension="101", to_extension="102", kind="attended"),
                     fact(99, sm.ENDED, disposition="answered", talk_seconds=96))
    assert desired.finish["USER_ID"] == 12


def test_a_consultation_that_was_not_completed_leaves_the_call_with_the_first_agent():
    desired = derive(inbound_started(), fact(3, sm.ANSWERED, extension="101"),
                     fact(30, sm.RINGING, extensions=["102"]), fact(32, sm.ANSWERED, extension="102"),
                     fact(99, sm.ENDED, disposition="answered", talk_seconds=96))
    assert desired.finish["USER_ID"] == 11


@pytest.mark.parametrize(
    ("disposition", "outbound", "sip", "expected"),
    [
        ("answered", False, None, "200"),
        ("no_answer", False, None, "304"),
        ("busy", True, None, "486"),
        ("declined", True, None, "603"),
        ("cancelled", True, None, "603-S"),
        ("cancelled", False, None, "304"),
        ("failed", True, 503, "503"),
        ("failed", True, "484", "484"),
        ("failed", True, 502, "OTHER"),
        ("failed", True, None, "OTHER"),
        ("unavailable", True, None, "480"),
        ("invalid_number", True, None, "404"),
        ("forbidden", True, None, "403"),
        ("no_funds", True, None, "402"),
        ("blocked", True, None, "423"),
    ],
)
def test_dispositions_map_to_bitrix24_status_codes(disposition, outbound, sip, expected):
    assert sm.status_code_for_disposition(disposition, outbound=outbound, sip_code=sip) == expected


def test_failed_call_carries_the_sip_code_as_reason_and_cost_and_vote_when_given():
    desired = derive(outbound_started(), fact(5, sm.ENDED, disposition="failed", talk_seconds=0, sip_code=502,
                                              cost="1.50", currency="RUB", vote=4))
    assert desired.finish == {"USER_ID": 11, "DURATION": 0, "STATUS_CODE": "OTHER", "ADD_TO_CHAT": 1,
                              "FAILED_REASON": "SIP 502", "COST": "1.50", "COST_CURRENCY": "RUB", "VOTE": 4}


def test_add_to_chat_is_always_explicit_even_when_off():
    policy = Policy(users_by_extension=USERS, default_user=1, add_to_chat=False)
    desired = derive(outbound_started(), fact(5, sm.ENDED, disposition="answered", talk_seconds=3), policy=policy)
    assert desired.finish["ADD_TO_CHAT"] == 0
    assert desired.finish["DURATION"] == 3


def test_a_duplicate_call_ended_with_a_new_event_id_does_not_change_the_result():
    first = fact(60, sm.ENDED, "end-a", disposition="answered", talk_seconds=55)
    resent = fact(61, sm.ENDED, "end-b", disposition="answered", talk_seconds=56)
    base = (inbound_started(), fact(4, sm.ANSWERED, extension="101"))
    assert derive(*base, resent, first).finish == derive(*base, first).finish


# --- recordings -------------------------------------------------------------------------------------


def test_recording_is_attached_after_finish_and_a_newer_one_replaces_it():
    rec1 = fact(70, sm.RECORDING_READY, "rec-1", url="https://pbx/r1.mp3", filename="r1.mp3")
    rec2 = fact(90, sm.RECORDING_READY, "rec-2", url="https://pbx/r2.mp3", filename="r2.mp3")
    ended = fact(60, sm.ENDED, disposition="answered", talk_seconds=50)
    desired = derive(outbound_started(), ended, rec1, rec2)
    assert desired.recording.event_id == "rec-2"
    steps = sm.plan(desired, Achieved(b24_call_id="c"))
    assert [s.kind for s in steps] == [StepKind.FINISH, StepKind.ATTACH_RECORDING]
    assert sm.plan(desired, Achieved(b24_call_id="c", finished=True, recording_key="rec-2")) == []


def test_recording_of_a_live_call_waits_for_the_finish():
    rec = fact(70, sm.RECORDING_READY, url="https://pbx/r1.mp3")
    desired = derive(outbound_started(), rec)
    assert StepKind.ATTACH_RECORDING not in [s.kind for s in sm.plan(desired, Achieved(b24_call_id="c"))]


# --- click-to-call and callback -----------------------------------------------------------------


def test_click_to_call_is_never_registered_but_shown_and_finished_on_bitrix24s_call_id():
    started = fact(0, sm.STARTED, direction="outbound", client_number="+79165551234", extension="102",
                   origin_request_id="r1")
    desired = derive(started, fact(40, sm.ENDED, disposition="answered", talk_seconds=30),
                     origin=sm.ORIGIN_CLICK_TO_CALL, origin_user_id=12)
    assert desired.register is None
    assert desired.finish["USER_ID"] == 12
    steps = sm.plan(desired, Achieved(b24_call_id="externalCall.abc"))
    assert [s.kind for s in steps] == [StepKind.FINISH]


def test_callback_registers_with_type_4_and_the_line():
    started = fact(0, sm.STARTED, direction="outbound", client_number="+79165551234", extension="103",
                   line_number="+74951234567", origin_request_id="r2")
    desired = derive(started, origin=sm.ORIGIN_CALLBACK, origin_user_id=13, crm_entity_type="CONTACT",
                     crm_entity_id=797)
    assert desired.register["TYPE"] == 4
    assert desired.register["LINE_NUMBER"] == "+74951234567"
    assert desired.register["CRM_ENTITY_TYPE"] == "CONTACT"
    assert desired.register["CRM_ENTITY_ID"] == 797


def test_refused_click_to_call_is_finished_as_failed_with_the_reason():
    desired = derive(origin=sm.ORIGIN_CLICK_TO_CALL, origin_user_id=12, preset_client_number="+79165551234",
                     forced_end=ForcedEnd("404", "PBX: unknown extension", T0))
    assert desired.phase is Phase.ENDED
    assert desired.finish == {"USER_ID": 12, "DURATION": 0, "STATUS_CODE": "404", "ADD_TO_CHAT": 1,
                              "FAILED_REASON": "PBX: unknown extension"}
    assert [s.kind for s in sm.plan(desired, Achieved(b24_call_id="externalCall.x"))] == [StepKind.FINISH]


def test_refused_callback_is_registered_and_finished_as_failed():
    desired = derive(origin=sm.ORIGIN_CALLBACK, origin_user_id=13, preset_client_number="+79165551234",
                     preset_line_number="+74951234567", forced_end=ForcedEnd("OTHER", "PBX refused", T0))
    assert desired.register["TYPE"] == 4 and desired.register["USER_ID"] == 13
    assert desired.finish["STATUS_CODE"] == "OTHER"
    assert [s.kind for s in sm.plan(desired, Achieved())] == [StepKind.ENSURE_LINE, StepKind.REGISTER,
                                                              StepKind.FINISH]


def test_origin_request_waiting_for_the_pbx_does_nothing():
    desired = derive(origin=sm.ORIGIN_CLICK_TO_CALL, origin_user_id=12)
    assert desired.phase is Phase.EMPTY
    assert sm.plan(desired, Achieved(b24_call_id="externalCall.x")) == []


def test_finish_waits_a_settle_window_after_call_ended_arrived():
    ended = fact(60, sm.ENDED, disposition="no_answer", talk_seconds=0)
    desired = derive(inbound_started(), ended)
    assert sm.finish_wait(desired, ended_age=1.0, settle=3.0, answer_wait=30.0) == 2.0
    assert sm.finish_wait(desired, ended_age=5.0, settle=3.0, answer_wait=30.0) == 0.0


def test_answered_call_without_a_known_answerer_waits_longer_for_call_answered():
    desired = derive(inbound_started(), fact(60, sm.ENDED, disposition="answered", talk_seconds=50))
    assert desired.answer_unknown
    assert sm.finish_wait(desired, ended_age=5.0, settle=3.0, answer_wait=30.0) == 25.0
    # ...and once the wait is over it finishes under the missed-call owner rather than never.
    assert sm.finish_wait(desired, ended_age=31.0, settle=3.0, answer_wait=30.0) == 0.0


def test_a_forced_end_does_not_wait():
    desired = derive(origin=sm.ORIGIN_CLICK_TO_CALL, origin_user_id=12,
                     forced_end=ForcedEnd("404", "unknown extension", T0))
    assert sm.finish_wait(desired, ended_age=0.0, settle=3.0, answer_wait=30.0) == 0.0
