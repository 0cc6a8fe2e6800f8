"""Scripted scenarios: reproducible, valid against the PBX API, delivered as each script says."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from calls.pbx_api.events import validate_event
from pbxsim import SCENARIOS, DeliveryOptions, ScenarioParams, build
from pbxsim.wav import wav_sha256

BASE = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
PARAMS = ScenarioParams(base_time=BASE, origin_request_id="req-1")


def dump(scenario) -> str:
    return json.dumps([scenario.events, [(d.send_at, d.events) for d in scenario.deliveries]], sort_keys=True)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_same_seed_and_params_build_the_same_scenario_byte_for_byte(name):
    assert dump(build(name, seed=7, params=PARAMS)) == dump(build(name, seed=7, params=PARAMS))


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_another_seed_gives_other_call_and_event_ids(name):
    a, b = build(name, seed=1, params=PARAMS), build(name, seed=2, params=PARAMS)
    assert a.call_id != b.call_id
    assert {e["event_id"] for e in a.events}.isdisjoint(e["event_id"] for e in b.events)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_event_is_valid_for_the_connector(name):
    scenario = build(name, seed=3, params=PARAMS)
    for event in scenario.events:
        _payload, errors = validate_event(event, {"allowed_recording_hosts": {"pbx.example.test"}})
        assert errors == {}, (event, errors)
    assert len({e["event_id"] for e in scenario.events}) == len(scenario.events)
    assert {e["call_id"] for e in scenario.events} == {scenario.call_id}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_event_is_delivered_at_least_once(name):
    scenario = build(name, seed=4, params=PARAMS)
    delivered = Counter(e["event_id"] for d in scenario.deliveries for e in d.events)
    assert set(delivered) == {e["event_id"] for e in scenario.events}
    assert [d.send_at for d in scenario.deliveries] == sorted(d.send_at for d in scenario.deliveries)


def test_ring_group_is_answered_by_its_second_member():
    events = build("ring_group_second_answers", seed=1, params=PARAMS).events
    ringing = next(e for e in events if e["type"] == "call.ringing")
    answered = next(e for e in events if e["type"] == "call.answered")
    assert ringing["extensions"] == ["101", "102", "103"]
    assert answered["extension"] == "102"


def test_ended_before_started_sends_the_end_first_with_truthful_times():
    scenario = build("ended_before_started", seed=1, params=PARAMS)
    assert [d.events[0]["type"] for d in scenario.deliveries] == ["call.ended", "call.started"]
    started, ended = scenario.events
    assert started["occurred_at"] < ended["occurred_at"]


def test_duplicated_and_reordered_sends_each_event_twice_out_of_order():
    scenario = build("duplicated_and_reordered", seed=5, params=PARAMS)
    sent = [e["event_id"] for d in scenario.deliveries for e in d.events]
    assert Counter(sent) == Counter({e["event_id"]: 2 for e in scenario.events})
    first_arrivals = list(dict.fromkeys(sent))
    assert first_arrivals != [e["event_id"] for e in scenario.events]


@pytest.mark.parametrize("delay", [120, 900])
def test_late_recording_arrives_the_configured_time_after_the_end(delay):
    params = ScenarioParams(base_time=BASE, recording_delay_s=delay)
    scenario = build("late_recording", seed=1, params=params)
    ended = next(d for d in scenario.deliveries if d.events[0]["type"] == "call.ended")
    recording = next(d for d in scenario.deliveries if d.events[0]["type"] == "call.recording_ready")
    assert recording.send_at - ended.send_at == delay
    occurred = datetime.fromisoformat(recording.events[0]["occurred_at"])
    assert occurred - datetime.fromisoformat(ended.events[0]["occurred_at"]) == timedelta(seconds=delay)


def test_recording_event_describes_the_wav_the_simulator_serves():
    scenario = build("ring_group_second_answers", seed=9, params=PARAMS)
    recording = scenario.recording()
    tone = int(recording["url"].rsplit("tone=", 1)[1])
    assert recording["sha256"] == wav_sha256(60, tone_hz=tone)
    assert recording["url"].startswith("https://pbx.example.test/recordings/")


def test_originated_call_echoes_the_request_id():
    scenario = build("originate_answered", seed=1, params=ScenarioParams(base_time=BASE, origin_request_id="r-42"))
    started = scenario.events[0]
    assert (started["type"], started["direction"], started["origin_request_id"]) == ("call.started", "outbound", "r-42")


def test_batch_window_merges_close_deliveries_into_arrays():
    scenario = build("ring_group_second_answers", seed=1, params=PARAMS,
                     options=DeliveryOptions(batch_window_s=10))
    # Sent at 0, 1, 9 | 69, 75 seconds: two arrays.
    assert [len(d.events) for d in scenario.deliveries] == [3, 2]


def test_options_duplicate_and_jitter_are_reproducible():
    options = DeliveryOptions(duplicate=0.5, jitter_s=3, reorder=True)
    a = build("blind_transfer", seed=11, params=PARAMS, options=options)
    b = build("blind_transfer", seed=11, params=PARAMS, options=options)
    assert dump(a) == dump(b)


def test_unknown_scenario_is_named_in_the_error():
    with pytest.raises(KeyError, match="known"):
        build("does_not_exist")
