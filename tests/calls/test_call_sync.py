"""PBX events in, Bitrix24 state out: the scripted calls of the PBX simulator through the real PBX API, the
state machine services and the sandbox portal (in-process; the worker's loop is ``drive()``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from call_scenario_fixtures import *  # noqa: F403  (fixtures: phone, recordings)
from call_scenario_fixtures import AGENTS, CLIENT, LINE, drive, make_phone_portal

from calls.models import Call, DeadLetter, ExtensionOverride, PbxEvent
from calls.settings import services
from calls.sync import reconciler


@pytest.fixture(autouse=True)
def _recordings_over_local_http(settings):
    """For the tests that build portals with ``make_phone_portal`` themselves (``phone`` does it too)."""
    settings.RECORDINGS_ALLOW_PRIVATE_HOSTS = True
    settings.RECORDINGS_ALLOW_HTTP = True


def one_b24_call(phone, pbx_call_id: str) -> dict:
    call = phone.call(pbx_call_id)
    return phone.b24_call(call)


# --- the scripted scenarios -----------------------------------------------------------------------------


def test_ring_group_call_shows_cards_to_the_group_then_only_to_the_second_member_who_answered(phone):
    scenario = phone.scenario("ring_group_second_answers")
    started, ringing, answered, ended, recording = scenario.events

    phone.send(started, ringing)
    drive()
    call = phone.call(scenario.call_id)
    assert phone.b24.cards_visible(call.b24_call_id) == {AGENTS["101"], AGENTS["102"], AGENTS["103"]}

    phone.send(answered)
    drive()
    assert phone.b24.cards_visible(call.b24_call_id) == {AGENTS["102"]}

    phone.send(ended, recording)
    drive()
    b24 = phone.b24_call(call)
    assert b24["type"] == 2
    assert b24["line_number"] == LINE
    assert b24["phone_number"] == CLIENT
    assert b24["external_call_id"] == str(call.uuid)
    assert b24["call_start_date"] == started["occurred_at"]  # the PBX's own time and UTC offset
    assert (b24["finish_user_id"], b24["status_code"], b24["duration"]) == (AGENTS["102"], "200", 60)
    assert b24["finish"]["add_to_chat_sent"] is not None and b24["finish"]["duration_sent"] is not None
    assert b24["visible_to"] == []
    assert b24["recording"] is not None and b24["recording"]["filename"].endswith((".wav", ".mp3"))
    assert len(phone.b24_calls()) == 1
    # the card was shown in one batched call to the whole group
    shows = [h for h in b24["history"] if h["op"] == "show"]
    assert shows[0]["users"] == [AGENTS["101"], AGENTS["102"], AGENTS["103"]]
    call.refresh_from_db()
    assert call.status == Call.Status.DONE and call.answered_by == "102"


def test_line_is_registered_as_an_external_line_before_the_incoming_call(phone):
    phone.play(phone.scenario("missed_call"))
    drive()
    from b24sandbox import telephony

    lines = telephony.snapshot(phone.b24)["lines"]
    assert [(line["number"], line["auto_created"]) for line in lines] == [(LINE, False)]


def test_missed_call_is_one_record_under_the_missed_call_owner(phone):
    services.update_portal_settings(phone.portal.pk, {"missed_call_owner": {"strategy": "fixed",
                                                                            "user_id": AGENTS["103"]}})
    scenario = phone.scenario("missed_call")
    phone.play(scenario)
    drive()
    b24 = one_b24_call(phone, scenario.call_id)
    assert (b24["finish_user_id"], b24["status_code"], b24["duration"]) == (AGENTS["103"], "304", 0)
    assert len(phone.b24_calls()) == 1
    from b24sandbox import telephony

    assert len(telephony.snapshot(phone.b24)["statistics"]) == 1
    assert b24["visible_to"] == []


def test_missed_call_nobody_owns_falls_back_to_the_installing_admin(phone):
    scenario = phone.scenario("missed_call")
    phone.play(scenario)
    drive()
    b24 = one_b24_call(phone, scenario.call_id)
    assert b24["finish_user_id"] == b24["user_id"] == phone.portal.credential.user_id


def test_busy_outgoing_call_is_type_1_finished_486_under_the_dialling_agent(phone):
    scenario = phone.scenario("busy_outgoing")
    phone.play(scenario)
    drive()
    b24 = one_b24_call(phone, scenario.call_id)
    assert (b24["type"], b24["user_id"], b24["finish_user_id"], b24["status_code"]) == (1, AGENTS["101"],
                                                                                         AGENTS["101"], "486")
    assert b24["line_number"] is None


def test_blind_transfer_moves_the_card_and_the_call_to_the_target(phone):
    scenario = phone.scenario("blind_transfer")
    started, ringing, answered, transferred, *rest = scenario.events
    phone.send(started, ringing, answered)
    drive()
    call = phone.call(scenario.call_id)
    assert phone.b24.cards_visible(call.b24_call_id) == {AGENTS["101"]}
    phone.send(transferred)
    drive()
    assert phone.b24.cards_visible(call.b24_call_id) == {AGENTS["102"]}
    phone.send(*rest)
    drive()
    b24 = phone.b24_call(call)
    assert (b24["finish_user_id"], b24["status_code"], b24["duration"]) == (AGENTS["102"], "200", 90)
    assert b24["visible_to"] == [] and b24["recording"] is not None


def test_attended_transfer_ends_with_the_target_and_carries_the_cost(phone):
    scenario = phone.scenario("attended_transfer")
    started, ringing, answered, transferred, *rest = scenario.events
    phone.send(started, ringing, answered)
    drive()
    call = phone.call(scenario.call_id)
    assert phone.b24.cards_visible(call.b24_call_id) == {AGENTS["101"]}
    phone.send(transferred)
    drive()
    assert phone.b24.cards_visible(call.b24_call_id) == {AGENTS["102"]}
    phone.send(*rest)
    drive()
    b24 = phone.b24_call(call)
    assert (b24["finish_user_id"], b24["status_code"], b24["duration"]) == (AGENTS["102"], "200", 115)
    assert (b24["finish"]["cost"], b24["finish"]["cost_currency"]) == (1.2, "RUB")
    assert b24["visible_to"] == []


def test_a_call_that_ended_before_we_saw_it_never_opens_a_card(phone):
    scenario = phone.scenario("attended_transfer")
    phone.play(scenario)
    drive()
    b24 = one_b24_call(phone, scenario.call_id)
    assert [h for h in b24["history"] if h["op"] == "show"] == []
    assert b24["finished"] and b24["finish_user_id"] == AGENTS["102"]


def test_call_ended_before_started_waits_then_registers_and_finishes_once(phone):
    scenario = phone.scenario("ended_before_started")
    started, ended = scenario.events
    phone.send(ended)
    drive()
    call = phone.call(scenario.call_id)
    assert call.status == Call.Status.WAITING_FOR_START
    assert phone.b24_calls() == []
    phone.send(started)
    drive()
    b24 = phone.b24_call(call)
    assert (b24["type"], b24["status_code"], b24["duration"]) == (2, "304", 0)  # cancelled incoming = missed
    assert len(phone.b24_calls()) == 1


def test_events_without_call_started_become_a_dead_letter_with_a_clear_reason(phone, settings):
    settings.CALLS_START_WAIT_SECONDS = 0
    scenario = phone.scenario("ended_before_started")
    _, ended = scenario.events
    phone.send(ended)
    drive()
    call = phone.call(scenario.call_id)
    assert call.status == Call.Status.DEAD
    [letter] = DeadLetter.objects.filter(call=call)
    assert letter.reason == "call.started never arrived"
    assert scenario.call_id in letter.detail
    assert phone.b24_calls() == []


def test_a_late_call_started_revives_a_call_dead_lettered_for_want_of_it(phone, settings):
    settings.CALLS_START_WAIT_SECONDS = 0
    scenario = phone.scenario("ended_before_started")
    started, ended = scenario.events
    phone.send(ended)
    drive()
    settings.CALLS_START_WAIT_SECONDS = 600
    phone.send(started)
    drive()
    call = phone.call(scenario.call_id)
    assert call.status == Call.Status.DONE
    assert DeadLetter.objects.get(call=call).resolved_at is not None
    assert phone.b24_call(call)["status_code"] == "304"


def test_duplicated_and_reordered_events_give_the_same_bitrix24_result_as_in_order(phone):
    when = datetime(2026, 3, 7, 7, 0, tzinfo=UTC)
    shuffled = phone.scenario("duplicated_and_reordered", seed=7, base_time=when)
    assert [d.events[0]["event_id"] for d in shuffled.deliveries] != [e["event_id"] for e in shuffled.events]
    phone.play(shuffled)
    drive()
    in_order = phone.scenario("duplicated_and_reordered", seed=7, call_id="in-order", base_time=when)
    for event in in_order.events:
        phone.send(event)
        drive()

    def essentials(b24: dict) -> tuple:
        return (b24["type"], b24["user_id"], b24["caller_id"], b24["line_number"], b24["call_start_date"],
                b24["finish_user_id"], b24["status_code"], b24["duration"], b24["finish"]["vote"],
                b24["visible_to"], b24["recording"] is not None, b24["registrations"])

    a = one_b24_call(phone, shuffled.call_id)
    b = one_b24_call(phone, in_order.call_id)
    assert essentials(a) == essentials(b)
    assert (a["finish_user_id"], a["status_code"], a["duration"]) == (AGENTS["101"], "200", 40)
    assert len(phone.b24_calls()) == 2


def test_recording_arriving_minutes_after_the_end_is_attached_to_the_finished_call(phone):
    scenario = phone.scenario("late_recording")
    *call_events, recording = scenario.events
    phone.send(*call_events)
    drive()
    call = phone.call(scenario.call_id)
    b24 = phone.b24_call(call)
    assert b24["finished"] and b24["recording"] is None
    phone.send(recording)
    drive()
    b24 = phone.b24_call(call)
    assert b24["recording"] is not None
    call.refresh_from_db()
    assert call.recording_key == recording["event_id"] and call.status == Call.Status.DONE


# --- who is who -------------------------------------------------------------------------------------


def test_calls_between_two_extensions_never_reach_bitrix24(phone):
    started = {"event_id": "int-1", "type": "call.started", "call_id": "internal", "direction": "outbound",
               "client_number": "102", "line_number": "", "extension": "101",
               "occurred_at": "2026-03-07T10:20:30+03:00"}
    ended = {"event_id": "int-2", "type": "call.ended", "call_id": "internal", "disposition": "answered",
             "talk_seconds": 12, "occurred_at": "2026-03-07T10:21:00+03:00"}
    phone.send(started, ended)
    drive()
    assert phone.call("internal").status == Call.Status.IGNORED
    assert phone.b24_calls() == []


def test_connection_override_wins_over_uf_phone_inner(phone):
    ExtensionOverride.objects.create(connection=phone.connection, extension="101", user_id=AGENTS["103"])
    scenario = phone.scenario("busy_outgoing")
    phone.play(scenario)
    drive()
    assert one_b24_call(phone, scenario.call_id)["finish_user_id"] == AGENTS["103"]


def test_unmapped_agent_falls_back_to_the_default_user_and_is_remembered(phone):
    scenario = phone.scenario("busy_outgoing", agents=("555",))
    phone.play(scenario)
    drive()
    b24 = one_b24_call(phone, scenario.call_id)
    assert b24["user_id"] == phone.portal.credential.user_id
    assert phone.call(scenario.call_id).unmapped_extensions == ["555"]


def test_crm_create_follows_the_portal_setting(phone):
    services.update_portal_settings(phone.portal.pk, {"crm_create": "off"})
    scenario = phone.scenario("missed_call")
    phone.play(scenario)
    drive()
    assert one_b24_call(phone, scenario.call_id)["crm_create"] is False


def test_same_pbx_call_id_on_two_portals_stays_two_calls_each_in_its_own_bitrix24(sandbox, client, recordings, db):
    first = make_phone_portal(sandbox, client, recordings, domain="first.bitrix24.test")
    second = make_phone_portal(sandbox, client, recordings, domain="second.bitrix24.test")
    first.play(first.scenario("busy_outgoing", call_id="shared-id"))
    second.play(second.scenario("missed_call", call_id="shared-id"))
    drive()
    assert [c["type"] for c in first.b24_calls()] == [1]
    assert [c["type"] for c in second.b24_calls()] == [2]
    assert first.call("shared-id").portal_id == first.portal.pk
    assert second.call("shared-id").portal_id == second.portal.pk


# --- exactly once ---------------------------------------------------------------------------------------


def test_replaying_the_same_event_changes_nothing(phone):
    scenario = phone.scenario("busy_outgoing")
    phone.play(scenario)
    drive()
    event = PbxEvent.objects.filter(connection=phone.connection).first()
    again = reconciler.apply_pbx_event(event.pk)
    assert again == phone.call(scenario.call_id).pk
    drive()
    b24 = one_b24_call(phone, scenario.call_id)
    assert b24["registrations"] == 1
    from b24sandbox import telephony

    assert len(telephony.snapshot(phone.b24)["statistics"]) == 1


def test_second_sync_while_one_holds_the_lease_is_told_to_come_back(phone):
    scenario = phone.scenario("busy_outgoing")
    phone.send(scenario.events[0])
    call_pk = reconciler.apply_pbx_event(PbxEvent.objects.get().pk)
    token = reconciler._claim(call_pk)
    assert token is not None
    result = reconciler.sync_call(call_pk)
    assert result.outcome == "busy" and result.delay > 0
    assert phone.b24_calls() == []
