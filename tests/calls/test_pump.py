"""The portal's pump (calls.sync.pump), in-process against the Bitrix24 sandbox: a quiet portal's event goes out
in the run its kick queued, one runner per portal at a time (taken over after a dead one's lease), a run yields
to other portals after its slice, and the sweeper kicks a portal whose events no pump message is coming for.
The same with real worker processes: tests/e2e/test_pump_e2e.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from call_scenario_fixtures import *  # noqa: F403  (fixtures: phone, recordings)
from call_scenario_fixtures import AGENTS
from django.core.cache import cache
from django.utils import timezone

from calls.models import Call, OutboxCommand, PbxEvent, PortalPump
from calls.sync import pump, sweeper, tasks


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
    assert (name, args) == ("run_pump", (phone.portal.pk,))  # back once the holder's lease has run out ...
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
    assert queued == [("run_pump", (portal,), None)]  # queued again, at the back of the queue
    assert not pump.mark_kick(portal)  # that message holds the mark: kicks meanwhile queue no other


def test_kicks_queue_one_message_per_portal_until_its_run_lets_go(phone, queued):
    portal = phone.portal.pk
    for _ in range(5):
        tasks.kick_pump(portal)
    assert queued == [("run_pump", (portal,), None)]
    tasks.run_pump.run(portal)  # nothing to do; it lets go of the mark
    tasks.kick_pump(portal)
    assert len(queued) == 2


def test_the_sweeper_kicks_a_portal_whose_events_wait_with_no_pump_message(phone, queued, settings):
    phone.send(phone.scenario("busy_outgoing").events[0])
    portal = phone.portal.pk
    assert pump.mark_kick(portal)  # the intake's kick, whose message was lost (a broker restart)
    later = timezone.now() + timedelta(seconds=settings.CALLS_SWEEP_GRACE_SECONDS + 1)
    follow_ups, counts = sweeper.sweep(now=later)
    assert follow_ups.pump_portals == [portal] and counts["events"] == 1

    settings.CALLS_SWEEP_GRACE_SECONDS = 0  # the event is past the grace now
    tasks.sweep_overdue.run()  # what beat does
    assert queued == []  # the lost message's mark still stands ...
    PortalPump.objects.filter(portal_id=portal).update(
        kicked_at=timezone.now() - timedelta(seconds=settings.CALLS_PUMP_KICK_TTL_SECONDS + 1))
    tasks.sweep_overdue.run()  # ... until it runs out (the sweeper's grace is longer than a mark lasts)
    assert queued == [("run_pump", (portal,), None)]
    tasks.run_pump.run(portal)
    assert pending_events() == 0 and Call.objects.get().b24_call_id


def test_a_finish_waiting_for_late_events_brings_the_pump_back_not_a_message_per_call(phone, queued, settings):
    settings.CALLS_FINISH_SETTLE_SECONDS = 3
    scenarios = [phone.scenario("busy_outgoing", seed=n) for n in range(3)]
    phone.send(*[e for s in scenarios for e in s.events])
    portal = phone.portal.pk

    tasks.run_pump.run(portal)

    assert all(c.b24_call_id and c.finished_at is None for c in Call.objects.all())  # the finishes wait
    assert [(name, args) for name, args, _ in queued] == [("run_pump", (portal,))]  # one timer for the three
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
    cache.delete(f"calls:pump-timer:{portal}")  # what it recorded was that very message
    queued.clear()

    tasks.run_pump.run(portal)

    assert Call.objects.get(pk=one.pk).finished_at and Call.objects.get(pk=two.pk).finished_at is None
    [(name, args, countdown)] = queued
    assert (name, args) == ("run_pump", (portal,)) and 9 < countdown <= 10  # back for the second call


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
