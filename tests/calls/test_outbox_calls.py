"""Calls through the outbox: the reconciler writes each step's commands, the portal's sender sends them (in
this worker when the portal is free, else whoever holds it), and the reconciler takes the outcomes in."""

from __future__ import annotations

from typing import Any

import pytest
from call_scenario_fixtures import *  # noqa: F403  (fixtures: phone, recordings)
from call_scenario_fixtures import AGENTS, drive

from calls.extensions import extension_map
from calls.models import Call, OutboxCommand, PbxEvent
from calls.outbox import sender
from calls.sync import pump, reconciler, tasks


@pytest.fixture(autouse=True)
def _users_read(phone):
    """The map of a running portal (with none, a call first waits for its users to be read)."""
    extension_map.sync_extensions(phone.portal.pk)


@pytest.fixture
def queued(monkeypatch) -> list[tuple[str, Any]]:
    """sync_call and pump messages the sender's word queues (captured instead of published)."""
    sent: list[tuple[str, Any]] = []
    monkeypatch.setattr(tasks.sync_call, "delay", lambda *args: sent.append(("sync_call", args)))
    monkeypatch.setattr(tasks.run_pump, "delay", lambda *args: sent.append(("run_pump", args)))
    return sent


def apply_all() -> None:
    for pk in PbxEvent.objects.filter(status=PbxEvent.Status.PENDING).order_by("pk").values_list("pk", flat=True):
        reconciler.apply_pbx_event(pk)


def bitrix24_requests(phone) -> list[str]:
    return [e["method"] for e in phone.b24.request_log if e["method"].startswith(("telephony.", "batch"))]


def test_a_quiet_portals_card_pops_with_the_register_in_one_request(phone):
    started, ringing, *_ = phone.scenario("ring_group_second_answers").events
    phone.b24.request_log.clear()
    phone.send(started, ringing)
    apply_all()
    call = Call.objects.get()
    assert reconciler.reconcile(call.pk).outcome == "idle"
    # line add, register and the ringing group's card: one batch, sent by this very run (no task hop)
    assert bitrix24_requests(phone) == ["batch"]
    call.refresh_from_db()
    assert phone.b24.cards_visible(call.b24_call_id) == {AGENTS["101"], AGENTS["102"], AGENTS["103"]}
    show = OutboxCommand.objects.get(kind=OutboxCommand.Kind.SHOW)
    assert show.sent_params["CALL_ID"].startswith("$result[")


def test_the_finishing_agents_card_is_closed_by_the_finish_not_hidden_before_it(phone):
    phone.play(phone.scenario("ring_group_second_answers"))
    drive()
    call = Call.objects.get()
    b24 = phone.b24_call(call)
    ops = [(h["op"], h.get("users")) for h in b24["history"] if h["op"] in ("show", "hide")]
    hidden = {u for op, users in ops if op == "hide" for u in users}
    assert AGENTS["102"] not in hidden  # the agent it is finished under
    assert b24["finish_user_id"] == AGENTS["102"] and b24["visible_to"] == []


def test_calls_waiting_for_a_busy_sender_are_served_by_its_batches_and_hear_from_it(
        phone, queued, django_capture_on_commit_callbacks):
    scenarios = [phone.scenario("busy_outgoing", seed=n) for n in range(12)]
    phone.b24.request_log.clear()
    token = sender.take_lease(phone.portal.pk)  # another worker is sending for this portal
    for scenario in scenarios:
        phone.send(scenario.events[0])  # call.started
    apply_all()
    calls = list(Call.objects.order_by("pk"))
    results = [reconciler.reconcile(c.pk) for c in calls]
    assert {r.outcome for r in results} == {"waiting"}  # no failure, no retry counted
    assert all(c.attempts == 0 and c.status == Call.Status.PENDING for c in Call.objects.all())
    assert bitrix24_requests(phone) == []

    sender.release_lease(phone.portal.pk, token)
    with django_capture_on_commit_callbacks(execute=True):
        report = sender.drain(phone.portal.pk)  # what the other worker does after letting go
    assert report.requests == 1 and report.batched_commands == 24  # 12 registers and their cards: one request
    shards = sorted({c.slot % pump.pump_settings().shards for c in calls})
    # one message per shard of the portal's pump the calls fall in: each takes its calls in
    assert queued == [("run_pump", (phone.portal.pk, shard)) for shard in shards]
    pumped = [pump.run(phone.portal.pk, shard) for shard in shards]
    assert sum(p.runs for p in pumped) == 12 and sum(p.requests for p in pumped) == 0
    assert all(c.b24_call_id and c.status == Call.Status.LIVE for c in Call.objects.all())
    assert len(phone.b24_calls()) == 12


def test_a_register_refused_inside_a_batch_dead_letters_its_call_only(phone, queued):
    good, bad = phone.scenario("busy_outgoing", seed=1), phone.scenario("busy_outgoing", seed=2)
    token = sender.take_lease(phone.portal.pk)
    phone.send(good.events[0], bad.events[0])
    apply_all()
    calls = list(Call.objects.order_by("pk"))
    for call in calls:
        reconciler.reconcile(call.pk)
    # Bitrix24 will not know the second call's agent (dismissed meanwhile).
    register = OutboxCommand.objects.get(call=calls[1], kind=OutboxCommand.Kind.REGISTER)
    OutboxCommand.objects.filter(pk=register.pk).update(params={**register.params, "USER_ID": 999_999})
    sender.release_lease(phone.portal.pk, token)
    sender.drain(phone.portal.pk)
    for call in calls:
        reconciler.reconcile(call.pk)
    first, second = Call.objects.order_by("pk")
    assert first.b24_call_id and first.status == Call.Status.LIVE
    assert second.status == Call.Status.DEAD and "refused telephony.externalcall.register" in second.last_error
    assert len(phone.b24_calls()) == 1
