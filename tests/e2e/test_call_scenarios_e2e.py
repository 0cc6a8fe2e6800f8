"""Every scripted PBX scenario, end to end: simulator -> PBX API (live server) -> a REAL Celery worker
process -> the sandbox Bitrix24 over HTTP, ending in exactly the Bitrix24 state a user expects."""

from __future__ import annotations

import pytest
from call_e2e_fixtures import *  # noqa: F403  (fixtures)

from calls.models import Call, PbxEvent

pytestmark = pytest.mark.e2e

BORIS, CLARA, DENIS = 2, 3, 4  # extensions 101, 102, 103
MISSED_OWNER = DENIS

# scenario -> (TYPE, registering user, finishing user, STATUS_CODE, DURATION, recording attached)
EXPECTED = {
    "ring_group_second_answers": (2, None, CLARA, "200", 60, True),
    "missed_call": (2, None, MISSED_OWNER, "304", 0, False),
    "busy_outgoing": (1, BORIS, BORIS, "486", 0, False),
    "blind_transfer": (2, None, CLARA, "200", 90, True),
    "attended_transfer": (2, None, CLARA, "200", 115, True),
    "ended_before_started": (2, None, MISSED_OWNER, "304", 0, False),
    "duplicated_and_reordered": (2, None, BORIS, "200", 40, True),
    "late_recording": (2, None, BORIS, "200", 30, True),
}
# how fast the PBX plays each call (1 = real time); the ones where timing matters are not instant
SPEED = {"ended_before_started": 2.0, "late_recording": 60.0, "duplicated_and_reordered": 4.0}
# (a late recording in the middle of the other calls here; on its own, after the finish, below)


@pytest.fixture
def portal_settings():
    return {"missed_call_owner": {"strategy": "fixed", "user_id": MISSED_OWNER}}


def test_every_scripted_scenario_ends_in_the_expected_bitrix24_state(phone, worker):
    # late_recording: the recording is ready 3 PBX-minutes after the end (3 s here at speed 60).
    scenarios = {name: phone.scenario(name, recording_delay_s=180) for name in EXPECTED}
    threads = [phone.play_in_background(s, speed=SPEED.get(name, 0.0)) for name, s in scenarios.items()]
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.errors, thread.errors

    for name, scenario in scenarios.items():
        call_type, register_user, finish_user, status, duration, recorded = EXPECTED[name]
        b24 = phone.wait_finished(scenario.call_id, worker=worker)
        if recorded:
            phone.wait_finished(scenario.call_id)
            from conftest import wait_until

            wait_until(lambda s=scenario: phone.b24_call_for(s.call_id)["recording"], timeout=60,
                       what=f"recording of {name}\n{worker.log()[-3000:]}")
            b24 = phone.b24_call_for(scenario.call_id)
        got = (b24["type"], b24["finish_user_id"], b24["status_code"], b24["duration"], b24["recording"] is not None)
        assert got == (call_type, finish_user, status, duration, recorded), name
        if register_user is not None:
            assert b24["user_id"] == register_user, name
        assert b24["visible_to"] == [], name
        assert b24["registrations"] == 1, name
        assert b24["finish"]["add_to_chat_sent"] is not None and b24["finish"]["duration_sent"] is not None
        call = Call.objects.get(connection=phone.connection, pbx_call_id=scenario.call_id)
        assert b24["external_call_id"] == str(call.uuid), name
        if call_type == 2:
            assert b24["line_number"] == "+74951234567", name

    snapshot = phone.telephony()
    assert len(snapshot["calls"]) == len(EXPECTED)  # one Bitrix24 call per physical call
    assert len(snapshot["statistics"]) == len(EXPECTED)  # finished exactly once each
    assert PbxEvent.objects.filter(status=PbxEvent.Status.PENDING).count() == 0


def test_recording_ready_minutes_after_the_end_is_attached_to_the_already_finished_call(phone, worker):
    from conftest import wait_until

    scenario = phone.scenario("late_recording", recording_delay_s=240)  # 4 PBX-minutes after the end
    *call_events, recording = scenario.events
    phone.sim.send_events(call_events)
    b24 = phone.wait_finished(scenario.call_id, worker=worker)
    assert b24["recording"] is None and (b24["finish_user_id"], b24["status_code"]) == (BORIS, "200")

    phone.sim.send_events(recording)  # the PBX publishes the recording late
    wait_until(lambda: Call.objects.filter(connection=phone.connection, pbx_call_id=scenario.call_id,
                                           recording_key=recording["event_id"], status=Call.Status.DONE).exists(),
               timeout=60, what="late recording\n" + worker.log()[-3000:])
    assert phone.b24_call_for(scenario.call_id)["recording"] is not None
    assert len(phone.telephony()["statistics"]) == 1


def test_ring_group_cards_follow_the_ringing_and_the_answer_live(phone, worker):
    from conftest import wait_until

    scenario = phone.scenario("ring_group_second_answers")
    started, ringing, answered, ended, recording = scenario.events
    phone.sim.send_events([started, ringing])

    def visible() -> list[int] | None:
        b24 = phone.b24_call_for(scenario.call_id)
        return b24["visible_to"] if b24 else None

    wait_until(lambda: visible() == [BORIS, CLARA, DENIS], timeout=30, what="cards for the ring group")
    phone.sim.send_events(answered)
    wait_until(lambda: visible() == [CLARA], timeout=30, what="card only for the answering agent")
    phone.sim.send_events([ended, recording])
    b24 = phone.wait_finished(scenario.call_id, worker=worker)
    assert (b24["finish_user_id"], b24["status_code"], b24["visible_to"]) == (CLARA, "200", [])
