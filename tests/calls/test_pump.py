"""The portal's pump (calls.sync.pump), in-process against the Bitrix24 sandbox: a quiet portal's event goes out
in the run its kick queued, one runner per portal at a time (taken over after a dead one's lease), a run yields
to other portals after its slice, and the sweeper kicks a portal whose events no pump message is coming for.
The same with real worker processes: tests/e2e/test_pump_e2e.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from call_scenario_fixtures import *  # noqa: F403  (fixtures: phone, recordings)
from call_scenario_fixtures import AGENTS, make_phone_portal
from django.core.cache import cache
from django.utils import timezone

from calls.extensions import extension_map
from calls.models import Call, OutboxCommand, PbxEvent, PortalPump
from calls.outbox import sender as outbox_sender
from calls.sync import pump, shards, sweeper, tasks


@pytest.fixture(autouse=True)
def _no_timer_left():
    """A run records the timer message it queued in the cache, which outlives the test's database: the next
    test's portal (the same id) would take it for its own."""
    cache.clear()


@pytest.fixture(autouse=True)
def _one_shard(settings):
    """The pump as one runner per portal (``CALLS_PUMP_SHARDS=1``): what a run does; the shard tests below set
    their own count. A run's slice is counted in events only: on a loaded machine a run of a few calls can
    outlast the default slice and queue itself again."""
    settings.CALLS_PUMP_SHARDS = 1
    settings.CALLS_PUMP_SLICE_SECONDS = 3600


@pytest.fixture
def queued(monkeypatch) -> list[tuple[str, Any, Any]]:
    """Messages the pump's task and its kicks queue (captured instead of published)."""
    sent: list[tuple[str, Any, Any]] = []
    monkeypatch.setattr(tasks.run_pump, "delay", lambda *args: sent.append(("run_pump", args, None)))
    monkeypatch.setattr(tasks.run_pump, "apply_async",
                        lambda args, countdown=None: sent.append(("run_pump", tuple(args), countdown)))
    monkeypatch.setattr(tasks.sync_call, "delay", lambda *args: sent.append(("sync_call", args, None)))
    monkeypatch.setattr(tasks.sync_call, "apply_async",
                        lambda args, countdown=None: sent.append(("sync_call", tuple(args), countdown)))
    return sent


def requests_of(phone) -> list[str]:
    return [e["method"] for e in phone.b24.request_log if e["method"].startswith(("telephony.", "batch"))]


def pending_events() -> int:
    return PbxEvent.objects.filter(status=PbxEvent.Status.PENDING).count()


def test_a_quiet_portals_event_is_applied_written_and_sent_in_one_pump_run(phone, queued):
    started, ringing, *_ = phone.scenario("ring_group_second_answers").events
    phone.b24.request_log.clear()
    phone.send(started, ringing)

    tasks.run_pump.run(phone.portal.pk)  # the one message the intake's kick queued

    call = Call.objects.get()
    assert call.b24_call_id and call.status == Call.Status.LIVE
    # line add, register and the ringing group's card went in one request, in this very run
    assert requests_of(phone) == ["batch"]
    assert phone.b24.cards_visible(call.b24_call_id) == {AGENTS["101"], AGENTS["102"], AGENTS["103"]}
    assert not OutboxCommand.objects.filter(applied_at=None).exists()  # every outcome taken in by the same run
    assert queued == []  # nothing left for another message


def test_a_burst_of_calls_goes_out_in_full_batches_and_is_taken_in_by_the_same_run(phone, queued):
    scenarios = [phone.scenario("busy_outgoing", seed=n) for n in range(12)]
    phone.b24.request_log.clear()
    phone.send(*[s.events[0] for s in scenarios])  # twelve call.started in one POST

    report = pump.run(phone.portal.pk)

    assert report.events == 12 and report.requests == 1  # twelve registers and their cards: one batch
    assert requests_of(phone) == ["batch"]
    assert all(c.b24_call_id for c in Call.objects.all())
    assert not OutboxCommand.objects.filter(applied_at=None).exists()


def test_one_pump_per_portal_another_run_leaves_and_comes_back_after_the_lease(phone, queued):
    phone.b24.request_log.clear()
    phone.send(phone.scenario("busy_outgoing").events[0])
    holder = pump.take_lease(phone.portal.pk, pump.pump_settings())  # another worker's pump is running
    assert holder is not None

    tasks.run_pump.run(phone.portal.pk)

    assert pending_events() == 1 and requests_of(phone) == []  # it did none of the holder's work
    [(name, args, countdown)] = queued
    assert (name, args) == ("run_pump", (phone.portal.pk, 0))  # back once the holder's lease has run out ...
    assert pump.pump_settings().lease_seconds - 1 < countdown <= pump.pump_settings().lease_seconds + 1

    # ... the holder died: its lease runs out and the next run takes the portal over.
    PortalPump.objects.filter(portal=phone.portal).update(until=timezone.now() - timedelta(seconds=1))
    tasks.run_pump.run(phone.portal.pk)
    assert pending_events() == 0 and Call.objects.get().b24_call_id


def test_a_run_yields_to_other_portals_after_its_slice_and_queues_itself_again(phone, queued, settings):
    settings.CALLS_PUMP_SLICE_EVENTS = 4
    settings.CALLS_PUMP_ROUND_EVENTS = 4
    phone.send(*[phone.scenario("busy_outgoing", seed=n).events[0] for n in range(10)])
    portal = phone.portal.pk
    assert pump.mark_kick(portal)  # the intake's kick: its message is this run

    tasks.run_pump.run(portal)

    assert pending_events() == 6  # the oldest four applied, the rest left for the next turn
    assert queued == [("run_pump", (portal, 0), None)]  # queued again, at the back of the queue
    assert not pump.mark_kick(portal)  # that message holds the mark: kicks meanwhile queue no other


def test_kicks_queue_one_message_per_portal_until_its_run_lets_go(phone, queued):
    portal = phone.portal.pk
    for _ in range(5):
        tasks.kick_pump(portal)
    assert queued == [("run_pump", (portal, 0), None)]
    tasks.run_pump.run(portal)  # nothing to do; it lets go of the mark
    tasks.kick_pump(portal)
    assert len(queued) == 2


def test_the_sweeper_kicks_a_portal_whose_events_wait_with_no_pump_message(phone, queued, settings):
    phone.send(phone.scenario("busy_outgoing").events[0])
    portal = phone.portal.pk
    assert pump.mark_kick(portal)  # the intake's kick, whose message was lost (a broker restart)
    later = timezone.now() + timedelta(seconds=settings.CALLS_SWEEP_GRACE_SECONDS + 1)
    follow_ups, counts = sweeper.sweep(now=later)
    assert follow_ups.pump_shards == [(portal, 0)] and counts["events"] == 1

    settings.CALLS_SWEEP_GRACE_SECONDS = 0  # the event is past the grace now
    tasks.sweep_overdue.run()  # what beat does
    assert queued == []  # the lost message's mark still stands ...
    PortalPump.objects.filter(portal_id=portal).update(
        kicked_at=timezone.now() - timedelta(seconds=settings.CALLS_PUMP_KICK_TTL_SECONDS + 1))
    tasks.sweep_overdue.run()  # ... until it runs out (the sweeper's grace is longer than a mark lasts)
    assert queued == [("run_pump", (portal, 0), None)]
    tasks.run_pump.run(portal)
    assert pending_events() == 0 and Call.objects.get().b24_call_id


def test_a_finish_waiting_for_late_events_brings_the_pump_back_not_a_message_per_call(phone, queued, settings):
    settings.CALLS_FINISH_SETTLE_SECONDS = 3
    scenarios = [phone.scenario("busy_outgoing", seed=n) for n in range(3)]
    phone.send(*[e for s in scenarios for e in s.events])
    portal = phone.portal.pk

    tasks.run_pump.run(portal)

    assert all(c.b24_call_id and c.finished_at is None for c in Call.objects.all())  # the finishes wait
    assert [(name, args) for name, args, _ in queued] == [("run_pump", (portal, 0))]  # one timer for the three
    countdown = queued[0][2]
    assert 2 < countdown <= 3.5
    # The window has passed when the timer's run comes: it finishes all three.
    settings.CALLS_FINISH_SETTLE_SECONDS = 0
    Call.objects.update(next_attempt_at=timezone.now())
    tasks.run_pump.run(portal)
    assert all(c.finished_at for c in Call.objects.all()) and len(phone.b24_calls()) == 3


def test_a_timer_run_sets_the_timer_again_for_a_later_retry_it_did_not_bring_in_line(phone, queued, settings):
    settings.CALLS_FINISH_SETTLE_SECONDS = 3
    first, second = (phone.scenario("busy_outgoing", seed=n) for n in range(2))
    phone.send(*first.events, *second.events)
    portal = phone.portal.pk
    cache.delete(f"calls:pump-timer:{portal}")  # an earlier test's portal of the same id (SQLite) set one
    tasks.run_pump.run(portal)
    assert [name for name, _args, _countdown in queued] == ["run_pump"]  # one timer for both finishes
    # That timer's run comes: the first call's finish is due, the second's is still 10 s away.
    settings.CALLS_FINISH_SETTLE_SECONDS = 0
    one, two = Call.objects.order_by("pk")
    Call.objects.filter(pk=one.pk).update(next_attempt_at=timezone.now())
    Call.objects.filter(pk=two.pk).update(next_attempt_at=timezone.now() + timedelta(seconds=10))
    cache.delete(f"calls:pump-timer:{portal}:0")  # what it recorded was that very message
    queued.clear()

    tasks.run_pump.run(portal)

    assert Call.objects.get(pk=one.pk).finished_at and Call.objects.get(pk=two.pk).finished_at is None
    [(name, args, countdown)] = queued
    assert (name, args) == ("run_pump", (portal, 0)) and 9 < countdown <= 10  # back for the second call


def test_a_rounds_new_cards_are_sent_before_its_finishes(phone, queued, settings):
    settings.CALLS_FINISH_SETTLE_SECONDS = 0
    earlier, later = (phone.scenario("missed_call", seed=n) for n in range(2))
    phone.send(*earlier.events[:2])  # the first call rings: its card is up
    pump.run(phone.portal.pk)
    phone.b24.request_log.clear()
    # One POST: the first call ends, then a second call rings.
    phone.send(earlier.events[2], *later.events[:2])

    pump.run(phone.portal.pk)

    second = phone.call(later.events[0]["call_id"])
    commands = [str(e.get("params", {}).get("cmd", {})) for e in phone.b24.request_log if e["method"] == "batch"]
    card = next(i for i, cmd in enumerate(commands) if str(second.uuid) in cmd)
    finish = next(i for i, cmd in enumerate(commands) if "externalcall.finish" in cmd)
    assert card < finish  # the second call's card went out in a request of its own, before the first's finish
    assert phone.b24.cards_visible(second.b24_call_id) == {AGENTS["101"], AGENTS["102"]}
    assert phone.call(earlier.events[0]["call_id"]).finished_at


# --- shards: a portal's pump runs as several runners at once, each over its share of the calls ------------------

SHARDS = 4


def shard_of_call(phone, call_id: str) -> int:
    return shards.shard_of(shards.slot_of(phone.connection.pk, call_id), SHARDS)


def calls_by_shard(phone, per_shard: int = 1, scenario: str = "busy_outgoing") -> dict[int, list[Any]]:
    """Scenarios of calls, ``per_shard`` of them falling in each shard of the portal's pump."""
    found: dict[int, list[Any]] = {shard: [] for shard in range(SHARDS)}
    seed = 0
    while any(len(found[shard]) < per_shard for shard in found):
        call = phone.scenario(scenario, seed=seed)
        seed += 1
        if len(found[shard_of_call(phone, call.call_id)]) < per_shard:
            found[shard_of_call(phone, call.call_id)].append(call)
    return found


def pending_of(phone, scenarios) -> int:
    return PbxEvent.objects.filter(connection=phone.connection, call_id__in=[s.call_id for s in scenarios],
                                   status=PbxEvent.Status.PENDING).count()


def test_every_event_of_a_call_and_the_call_itself_fall_in_one_shard(phone, queued, settings):
    settings.CALLS_PUMP_SHARDS = SHARDS
    scenarios = [phone.scenario("ring_group_second_answers", seed=n) for n in range(12)]
    for step in range(max(len(s.events) for s in scenarios)):  # POSTs of several calls' events, step by step
        phone.send(*[s.events[step] for s in scenarios if step < len(s.events)])
    for shard in range(SHARDS):
        pump.run(phone.portal.pk, shard)

    slots = {}
    for call in Call.objects.all():
        event_slots = set(PbxEvent.objects.filter(call_id=call.pbx_call_id).values_list("slot", flat=True))
        assert event_slots == {call.slot}, (call.pbx_call_id, event_slots, call.slot)
        slots[call.pbx_call_id] = call.slot
    assert len(slots) == 12 and len({slot % SHARDS for slot in slots.values()}) > 1  # the calls spread
    assert all(c.finished_at for c in Call.objects.all()) and len(phone.b24_calls()) == 12


def test_two_shards_run_at_once_each_applying_only_its_own_calls_events(phone, queued, settings):
    settings.CALLS_PUMP_SHARDS = SHARDS
    by_shard = calls_by_shard(phone, per_shard=2)
    phone.send(*[s.events[0] for calls in by_shard.values() for s in calls])
    portal = phone.portal.pk
    conf = pump.pump_settings()
    holder = pump.take_lease(portal, conf, 1)  # shard 1's runner is in the middle of its run
    assert holder is not None

    report = pump.run(portal, 2)  # shard 2's runner is not held up by it

    assert report.busy_for is None and report.events == 2
    assert pending_of(phone, by_shard[2]) == 0 and all(phone.call(s.call_id).b24_call_id for s in by_shard[2])
    assert pending_of(phone, by_shard[1] + by_shard[0] + by_shard[3]) == 6  # nobody else's events
    assert not Call.objects.filter(pbx_call_id__in=[s.call_id for s in by_shard[1]]).exists()
    assert pump.run(portal, 1).busy_for > 0  # shard 1 still has its one runner
    pump.release_lease(portal, holder, 1)
    assert pump.run(portal, 1).events == 2 and pending_of(phone, by_shard[1]) == 0


def test_a_dead_shard_runners_lease_is_taken_over_and_its_events_are_applied(phone, queued, settings):
    settings.CALLS_PUMP_SHARDS = SHARDS
    by_shard = calls_by_shard(phone)
    phone.send(*[calls[0].events[0] for calls in by_shard.values()])
    portal = phone.portal.pk
    assert pump.take_lease(portal, pump.pump_settings(), 3)  # shard 3's runner, which then dies

    tasks.run_pump.run(portal, 3)
    assert pending_of(phone, by_shard[3]) == 1
    [(name, args, countdown)] = queued
    assert (name, args) == ("run_pump", (portal, 3)) and countdown > 1  # back once the dead runner's lease ends
    PortalPump.objects.filter(portal_id=portal, shard=3).update(until=timezone.now() - timedelta(seconds=1))

    tasks.run_pump.run(portal, 3)

    assert pending_of(phone, by_shard[3]) == 0 and phone.call(by_shard[3][0].call_id).b24_call_id
    assert pending_of(phone, by_shard[0] + by_shard[1] + by_shard[2]) == 3  # the other shards' runners' work


def test_kicks_queue_one_message_per_shard_until_its_run_lets_go(phone, queued, settings):
    settings.CALLS_PUMP_SHARDS = SHARDS
    portal = phone.portal.pk
    for _ in range(3):
        tasks.kick_pumps(portal, [0, 2])
        tasks.kick_pump(portal, 2)
    assert queued == [("run_pump", (portal, 0), None), ("run_pump", (portal, 2), None)]
    tasks.run_pump.run(portal, 0)  # nothing to do; it lets go of shard 0's mark, not of shard 2's
    tasks.kick_pumps(portal, [0, 2])
    assert queued[2:] == [("run_pump", (portal, 0), None)]


def test_an_intake_post_kicks_the_shards_its_events_fall_in(phone, queued, settings,
                                                            django_capture_on_commit_callbacks):
    settings.CALLS_PUMP_SHARDS = SHARDS
    by_shard = calls_by_shard(phone)
    with django_capture_on_commit_callbacks(execute=True):
        phone.send(by_shard[1][0].events[0], by_shard[3][0].events[0])
    assert queued == [("run_pump", (phone.portal.pk, 1), None), ("run_pump", (phone.portal.pk, 3), None)]


def test_the_sweeper_kicks_only_the_shards_whose_events_wait(phone, queued, settings):
    settings.CALLS_PUMP_SHARDS = SHARDS
    by_shard = calls_by_shard(phone)
    phone.send(by_shard[2][0].events[0])
    portal = phone.portal.pk
    queued.clear()  # the intake's kick, whose message was lost (a broker restart) ...
    PortalPump.objects.filter(portal_id=portal).update(kicked_at=None)  # ... and whose mark has run out
    settings.CALLS_SWEEP_GRACE_SECONDS = 0

    tasks.sweep_overdue.run()  # what beat does

    assert queued == [("run_pump", (portal, 2), None)]
    tasks.run_pump.run(portal, 2)
    assert pending_events() == 0 and phone.call(by_shard[2][0].call_id).b24_call_id


def test_commands_a_shard_writes_while_another_holds_the_sender_are_sent_and_taken_in(
        phone, queued, settings, django_capture_on_commit_callbacks):
    settings.CALLS_PUMP_SHARDS = SHARDS
    by_shard = calls_by_shard(phone)
    phone.send(*[calls[0].events[0] for calls in by_shard.values()])
    portal = phone.portal.pk
    extension_map.sync_extensions(portal)  # a running portal has its extension map
    phone.b24.request_log.clear()
    queued.clear()
    sending = outbox_sender.take_lease(portal)  # shard 0's runner is sending (its round's drain)

    pump.run(portal, 1)  # shard 1 writes its call's commands and finds the sender busy: it goes on

    one = phone.call(by_shard[1][0].call_id)
    assert OutboxCommand.objects.filter(call=one, status=OutboxCommand.Status.PENDING).exists()
    assert requests_of(phone) == []
    outbox_sender.release_lease(portal, sending)
    with django_capture_on_commit_callbacks(execute=True):
        pump.run(portal, 0)  # shard 0's runner, its drain done, goes on: its next drain sends shard 1's commands

    commands = OutboxCommand.objects.filter(call=one)
    assert commands.exists() and not commands.exclude(status=OutboxCommand.Status.DONE).exists()  # all sent
    assert ("run_pump", (portal, 1), None) in queued  # their outcomes are shard 1's to take in: it is kicked
    pump.run(portal, 1)
    one.refresh_from_db()
    assert one.status == Call.Status.LIVE and phone.b24.cards_visible(one.b24_call_id)
    assert not commands.filter(applied_at=None).exists()
    # Shards 0 and 1 applied their own calls' events; shards 2 and 3's wait for their runners.
    assert len(phone.b24_calls()) == 2 and pending_of(phone, by_shard[2] + by_shard[3]) == 2


def test_a_portals_shard_runner_never_touches_another_portals_events(phone, sandbox, client, recordings, queued,
                                                                     settings):
    settings.CALLS_PUMP_SHARDS = SHARDS
    other = make_phone_portal(sandbox, client, recordings, domain="other.bitrix24.test")
    mine = [phone.scenario("busy_outgoing", seed=n) for n in range(8)]
    theirs = [other.scenario("busy_outgoing", seed=n) for n in range(8)]
    phone.send(*[s.events[0] for s in mine])
    other.send(*[s.events[0] for s in theirs])
    def shards_of(portal_phone) -> set[int]:
        return {e.slot % SHARDS for e in PbxEvent.objects.filter(connection=portal_phone.connection)}

    assert shards_of(phone) & shards_of(other)  # the same shards of two portals: runners told apart by portal

    for shard in range(SHARDS):
        pump.run(phone.portal.pk, shard)

    assert pending_of(phone, mine) == 0 and pending_of(other, theirs) == 8
    assert not Call.objects.filter(connection=other.connection).exists()
    assert other.b24_calls() == [] and len(phone.b24_calls()) == 8


def test_a_message_queued_before_the_shards_runs_shard_0_and_kicks_the_others(phone, queued, settings):
    settings.CALLS_PUMP_SHARDS = SHARDS
    by_shard = calls_by_shard(phone)
    phone.send(*[calls[0].events[0] for calls in by_shard.values()])
    portal = phone.portal.pk
    PortalPump.objects.filter(portal_id=portal).delete()  # the rows of the version before: one per portal ...
    PortalPump.objects.create(portal_id=portal, kicked_at=timezone.now())  # ... marked by its kick (shard 0)
    queued.clear()

    tasks.run_pump.run(portal)  # that kick's message: run_pump with the portal only

    assert pending_of(phone, by_shard[0]) == 0
    assert queued == [("run_pump", (portal, shard), None) for shard in (1, 2, 3)]
    for shard in (1, 2, 3):
        tasks.run_pump.run(portal, shard)
    assert pending_events() == 0 and len(phone.b24_calls()) == SHARDS
