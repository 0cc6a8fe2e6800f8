"""What processing PBX events costs the worker: database queries per event and per sync, the facts and
extension map read once per sync, follow-up messages per call, token-pair reads per client.

Ceilings and counts, never timings: the speed figures live in ``benchmarks/calls_throughput.py``. The
query ceilings hold on SQLite and PostgreSQL alike (savepoints of the test transaction included).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from call_scenario_fixtures import *  # noqa: F403  (fixtures: phone, recordings)
from call_scenario_fixtures import AGENTS
from django.db import connection
from django.test.utils import CaptureQueriesContext

from calls.extensions import extension_map
from calls.models import Call, PbxEvent
from calls.sync import portal_state, reconciler, tasks
from portals.services import bitrix24_client_for


@pytest.fixture(autouse=True)
def _extension_map_synced(phone):
    extension_map.sync_extensions(phone.portal.pk)  # a running portal already has its extension map ...
    portal_state.of(phone.portal.pk)  # ... and its workers remember what they read about it


@pytest.fixture
def queued(monkeypatch) -> list[tuple[str, Any, float]]:
    """The follow-up messages the task bodies queue, captured instead of published: (task, args, countdown)."""
    sent: list[tuple[str, Any, float]] = []

    def capture(name: str):
        def apply_async(args=None, kwargs=None, countdown=None, **options):
            sent.append((name, args, countdown or 0.0))

        return apply_async

    for name in ("sync_call", "attach_recording"):
        task = getattr(tasks, name)
        monkeypatch.setattr(task, "apply_async", capture(name))
        monkeypatch.setattr(task, "delay", lambda *args, _name=name: sent.append((_name, args, 0.0)))
    return sent


def inbox_pk(phone, event: dict) -> int:
    """Deliver one event through the PBX API; its inbox row (the worker's message would carry this id)."""
    phone.send(event)
    return PbxEvent.objects.get(connection=phone.connection, event_id=event["event_id"]).pk


def reads_of(captured: CaptureQueriesContext, table: str) -> int:
    """SELECTs that read ``table`` (on its own or joined)."""
    return sum(1 for q in captured.captured_queries if q["sql"].startswith("SELECT") and f'"{table}"' in q["sql"])


# --- queries per event ----------------------------------------------------------------------------------


def test_each_event_of_a_ring_group_call_is_processed_within_its_query_ceiling(phone, queued,
                                                                              django_assert_max_num_queries):
    started, ringing, answered, ended, _recording = phone.scenario("ring_group_second_answers").events
    # call.started: create the call, register the external line, register the call. Every Bitrix24 step
    # now goes through the outbox: its commands are written, claimed (committed before the request),
    # their outcomes stored and taken in, under the portal's sender lease (about 20 statements a step,
    # a third of them savepoints of the test's transaction). A lone command's outcome is one UPDATE (no
    # transaction around it), and the inline send stops on the outcomes of the commands the call awaits
    # (no query after each request). A card command's key needs no count of the call's earlier ones, and
    # the inline sender, which never waits for the bucket, takes its request without first asking whether
    # anything is due (its own commands were just written); a card change, one new command, is written
    # without a transaction and without looking for an earlier row of its key (none can have it).
    ceilings = [(started, 38), (ringing, 22), (answered, 22), (ended, 26)]
    for event, ceiling in ceilings:
        pk = inbox_pk(phone, event)
        with django_assert_max_num_queries(ceiling):
            tasks.process_pbx_event.run(pk)
    call = phone.call(started["call_id"])
    assert call.status == Call.Status.DONE
    b24 = phone.b24_call(call)
    assert (b24["finish_user_id"], b24["status_code"]) == (AGENTS["102"], "200")
    assert queued == []  # nothing left for a later message


def test_a_sync_with_nothing_to_do_costs_a_handful_of_queries(phone, django_assert_max_num_queries):
    scenario = phone.scenario("busy_outgoing")
    for event in scenario.events:
        call_pk = reconciler.apply_pbx_event(inbox_pk(phone, event))
        reconciler.reconcile(call_pk)
    # claim, the row (with the extension map, and that the connection overrides none), the facts, settle + let go
    with django_assert_max_num_queries(4):
        assert reconciler.reconcile(call_pk).outcome == "idle"


def test_one_sync_reads_the_facts_and_the_extension_map_once_however_many_steps_it_takes(phone):
    started = phone.scenario("ring_group_second_answers").events[0]
    call_pk = reconciler.apply_pbx_event(inbox_pk(phone, started))
    with CaptureQueriesContext(connection) as captured:
        assert reconciler.reconcile(call_pk).outcome == "idle"
    from b24sandbox import telephony

    assert [c["registrations"] for c in telephony.snapshot(phone.b24)["calls"]] == [1]
    assert telephony.snapshot(phone.b24)["lines"]  # two steps were taken: the line, then the call
    assert reads_of(captured, "calls_pbxevent") == 1
    # The portal's rows (the extension map; the installer's user id and the token pair) are the process's memory.
    assert reads_of(captured, "calls_extensiondirectory") == 0
    assert reads_of(captured, "portals_portalcredential") == 0


# --- follow-up messages ---------------------------------------------------------------------------------


def test_events_arriving_while_the_finish_waits_queue_no_second_sync(phone, queued, settings):
    settings.CALLS_FINISH_SETTLE_SECONDS = 30
    started, ringing, answered, ended, recording = phone.scenario("ring_group_second_answers").events
    for event in (started, ringing, answered):
        tasks.process_pbx_event.run(inbox_pk(phone, event))
    assert queued == []

    tasks.process_pbx_event.run(inbox_pk(phone, ended))
    assert [(name, args) for name, args, _ in queued] == [("sync_call", (phone.call(started["call_id"]).pk,))]
    assert 29 <= queued[0][2] <= 30  # comes back when the settle window is over
    tasks.process_pbx_event.run(inbox_pk(phone, recording))
    tasks.process_pbx_event.run(inbox_pk(phone, {**answered, "event_id": "answered-again"}))
    assert len(queued) == 1  # the message already queued does what these events' syncs would have

    call = phone.call(started["call_id"])
    # Everyone's card is hidden but the finishing agent's: the finish closes that one (no hide before it).
    assert call.finished_at is None and phone.b24.cards_visible(call.b24_call_id) == {AGENTS["102"]}
    settings.CALLS_FINISH_SETTLE_SECONDS = 0  # the window is over: the queued message runs
    tasks.sync_call.run(call.pk)
    b24 = phone.b24_call(call)
    assert (b24["finish_user_id"], b24["status_code"], b24["duration"]) == (AGENTS["102"], "200", 60)
    assert b24["visible_to"] == []
    assert [name for name, _, _ in queued[1:]] == ["attach_recording"]


def test_a_call_whose_holder_died_gets_one_comeback_message_however_many_events_found_it_busy(phone, queued):
    started, ringing, answered, ended, _recording = phone.scenario("ring_group_second_answers").events
    call_pk = reconciler.apply_pbx_event(inbox_pk(phone, started))
    assert reconciler._claim(call_pk) is not None  # a worker takes the call and dies holding it
    for event in (ringing, answered, ended):
        tasks.process_pbx_event.run(inbox_pk(phone, event))
    assert [(name, args) for name, args, _ in queued] == [("sync_call", (call_pk,))]
    assert queued[0][2] > 50  # after the dead holder's lease
    assert phone.b24_calls() == []

    Call.objects.filter(pk=call_pk).update(lease_until=None)  # the lease runs out
    tasks.sync_call.run(call_pk)
    b24 = phone.b24_call(phone.call(started["call_id"]))
    assert (b24["finish_user_id"], b24["status_code"], b24["registrations"]) == (AGENTS["102"], "200", 1)


def test_the_message_counted_on_queues_the_next_one_itself_when_more_waiting_is_needed(phone, queued, settings,
                                                                                      monkeypatch):
    settings.CALLS_FINISH_SETTLE_SECONDS = 30
    scenario = phone.scenario("busy_outgoing")
    for event in scenario.events:
        tasks.process_pbx_event.run(inbox_pk(phone, event))
    call_pk = phone.call(scenario.call_id).pk
    assert [name for name, _, _ in queued] == ["sync_call"]
    # That message's own run, when it is due, must not count on itself: the window is stretched so
    # the finish still has to wait, and the run queues the next message.
    real_time = reconciler.time.time
    monkeypatch.setattr(reconciler, "time", SimpleNamespace(time=lambda: real_time() + queued[0][2]))
    settings.CALLS_FINISH_SETTLE_SECONDS = 60
    tasks.sync_call.run(call_pk)
    assert [name for name, _, _ in queued] == ["sync_call", "sync_call"]
    assert phone.call(scenario.call_id).finished_at is None


# --- the Bitrix24 client --------------------------------------------------------------------------------


def test_a_client_reads_the_token_pair_once_for_several_requests(phone):
    with CaptureQueriesContext(connection) as captured:
        client = bitrix24_client_for(phone.portal.pk)
        for _ in range(3):
            assert client.call("profile").result["ID"]
    assert reads_of(captured, "portals_portalcredential") == 1


def test_a_pair_another_worker_refreshed_meanwhile_is_taken_over_without_refreshing_again(phone, sandbox):
    def refreshes() -> int:
        return sum(1 for t in sandbox.tokens.by_refresh.values()
                   if t.member_id == phone.portal.member_id and t.refresh_used)

    mine = bitrix24_client_for(phone.portal.pk)
    assert mine.call("profile").result["ID"]
    sandbox.clock.advance(3601)  # the access token expires
    assert bitrix24_client_for(phone.portal.pk).call("profile").result["ID"]  # another worker refreshes
    assert refreshes() == 1
    # Our client still holds the old pair: Bitrix24 refuses it, and the stored new pair is used.
    assert mine.call("user.current").result["ID"]
    assert refreshes() == 1


# --- what the savings must not change -------------------------------------------------------------------


def test_a_fact_applied_while_a_step_waits_for_bitrix24_decides_the_next_step(phone, monkeypatch):
    from b24client import Bitrix24Client

    started, ringing, answered, _ended, _recording = phone.scenario("ring_group_second_answers").events
    call_pk = reconciler.apply_pbx_event(inbox_pk(phone, started))
    reconciler.apply_pbx_event(inbox_pk(phone, ringing))
    answered_pk = inbox_pk(phone, answered)
    request = Bitrix24Client.batch

    def register_answered_late(self, commands: Any, halt: bool = False) -> Any:
        result = request(self, commands, halt)
        if any(method == reconciler.REGISTER for method, _params in commands.values()):
            reconciler.apply_pbx_event(answered_pk)  # another worker applies call.answered meanwhile
        return result

    monkeypatch.setattr(Bitrix24Client, "batch", register_answered_late)
    assert reconciler.reconcile(call_pk).outcome == "idle"
    b24 = phone.b24_call(phone.call(started["call_id"]))
    # The ringing group's card went with the register (one request); the step after it already knew who
    # answered, and left the card with them only.
    assert [(h["op"], h["users"]) for h in b24["history"] if h["op"] in ("show", "hide")] == [
        ("show", [AGENTS["101"], AGENTS["102"], AGENTS["103"]]), ("hide", [AGENTS["101"], AGENTS["103"]])]
    assert phone.b24.cards_visible(b24["call_id"]) == {AGENTS["102"]}


def test_an_event_applied_again_changes_nothing_and_still_names_its_call(phone):
    started, ringing = phone.scenario("ring_group_second_answers").events[:2]
    call_pk = reconciler.apply_pbx_event(inbox_pk(phone, started))
    pk = inbox_pk(phone, ringing)
    assert reconciler.apply_pbx_event(pk) == call_pk
    version = Call.objects.get(pk=call_pk).facts_version
    # A redelivered message (the worker died after the commit): the same call, no second fact, no lease.
    assert reconciler.claim_event(pk) == (call_pk, None)
    assert Call.objects.get(pk=call_pk).facts_version == version
    event = PbxEvent.objects.get(pk=pk)
    assert (event.status, event.attempts) == (PbxEvent.Status.PROCESSED, 1)


def test_an_unusable_event_fails_once_with_a_dead_letter_and_makes_no_call(phone):
    from calls.models import DeadLetter

    started = phone.scenario("busy_outgoing").events[0]
    pk = inbox_pk(phone, started)
    PbxEvent.objects.filter(pk=pk).update(payload=["not", "an", "object"])
    assert reconciler.apply_pbx_event(pk) is None
    assert reconciler.apply_pbx_event(pk) is None  # applied again: still failed, counted once
    event = PbxEvent.objects.get(pk=pk)
    assert (event.status, event.attempts, event.error) == (PbxEvent.Status.FAILED, 1, "payload is not an object")
    assert DeadLetter.objects.get(pbx_event=event).reason == "PBX event cannot be used"
    assert not Call.objects.exists()


# --- the portal's pump ------------------------------------------------------------------------------------


def test_a_pump_round_brings_each_call_in_line_once_for_its_facts_and_once_for_its_outcomes(phone, queued,
                                                                                           monkeypatch, settings):
    from calls.sync import pump

    settings.CALLS_PUMP_SHARDS = 1  # one runner takes all six calls (with more, each shard's run takes its own)
    monkeypatch.setattr(tasks.run_pump, "delay", lambda *args: None)
    scenarios = [phone.scenario("busy_outgoing", seed=n) for n in range(6)]
    phone.send(*[s.events[0] for s in scenarios])  # six call.started in one POST: six cards to pop
    report = pump.run(phone.portal.pk)
    assert report.events == 6 and all(c.b24_call_id for c in Call.objects.all())
    # Each call: written (register and card, sent at once), then the outcomes taken in; no third run of a call
    # whose outcomes were taken in already.
    assert report.runs == 12
