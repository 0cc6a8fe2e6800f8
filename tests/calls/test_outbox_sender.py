"""The portal's sender against the sandbox portal: batches, references, failures that stay alone, held
methods, the lease, pruning. Commands are written as a reconciler writes them (``calls.outbox.services``)."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import timedelta

from call_scenario_fixtures import *  # noqa: F403  (fixtures: phone, recordings)
from call_scenario_fixtures import AGENTS
from django.utils import timezone
from outbox_fixtures import *  # noqa: F403  (the autouse fixture: the install's requests left out)
from outbox_fixtures import REGISTER, SHOW, Status, new_call, register_command, show_command, write

from calls.models import Call, OutboxCommand, OutboxSender
from calls.outbox import packing, selectors, sender, services
from calls.outbox.services import NewCommand


def batches_run(phone) -> list[list[str]]:
    """The keys of each batch's commands, in the order Bitrix24 ran them."""
    return [list(e["response"]["result"]["result"]) for e in phone.b24.request_log if e["method"] == "batch"]


def requests_sent(phone) -> list[str]:
    return [e["method"] for e in phone.b24.request_log if e["method"].startswith(("telephony.", "batch"))]


def test_a_lone_command_goes_alone_and_its_result_is_stored_on_its_row(phone):
    call = new_call(phone, 1)
    row = write(call, register_command(call))[f"call:{call.pk}:register"]
    report = sender.drain(phone.portal.pk)
    row.refresh_from_db()
    assert requests_sent(phone) == [REGISTER]
    assert row.status == Status.DONE and row.result["CALL_ID"].startswith("externalCall.")
    assert row.attempts == 1 and row.attempted_at is not None and row.sent_params == row.params
    assert report.settled_calls == {call.pk}


def test_a_batch_with_one_failing_command_fails_that_one_alone_and_the_rest_stands(phone):
    calls = [new_call(phone, n) for n in range(3)]
    write(calls[0], register_command(calls[0]))
    write(calls[1], register_command(calls[1], user=999_999))  # no such user in Bitrix24
    write(calls[2], register_command(calls[2]))
    sender.drain(phone.portal.pk)
    assert requests_sent(phone) == ["batch"]  # one request for all three
    rows = {r.call_id: r for r in OutboxCommand.objects.all()}
    assert rows[calls[0].pk].status == rows[calls[2].pk].status == Status.DONE
    failed = rows[calls[1].pk]
    assert failed.status == Status.FAILED and failed.error["type"] == "NotFound"  # "User is not found"
    assert failed.result is None
    assert len(phone.b24_calls()) == 2


def test_register_and_card_show_go_in_one_batch_the_show_naming_the_register_by_reference(phone):
    call = new_call(phone, 1)
    rows = write(call, register_command(call), show_command(call, [AGENTS["101"], AGENTS["102"]]))
    sender.drain(phone.portal.pk)
    assert requests_sent(phone) == ["batch"]
    register, show = (OutboxCommand.objects.get(pk=r.pk) for r in rows.values())
    assert show.sent_params["CALL_ID"] == f"$result[c{register.pk}][CALL_ID]"
    assert phone.b24.cards_visible(register.result["CALL_ID"]) == {AGENTS["101"], AGENTS["102"]}
    assert batches_run(phone) == [[f"c{register.pk}", f"c{show.pk}"]]  # the register runs first


def test_a_show_written_after_its_register_was_done_gets_the_real_call_id(phone):
    call = new_call(phone, 1)
    write(call, register_command(call))
    sender.drain(phone.portal.pk)
    b24_call_id = OutboxCommand.objects.get().result["CALL_ID"]
    write(call, show_command(call, [AGENTS["103"]]))
    sender.drain(phone.portal.pk)
    show = OutboxCommand.objects.get(kind=OutboxCommand.Kind.SHOW)
    assert show.sent_params["CALL_ID"] == b24_call_id and show.status == Status.DONE
    assert requests_sent(phone) == [REGISTER, SHOW]


def test_the_card_of_a_live_call_goes_first_and_calls_take_turns(phone):
    registered = new_call(phone, 0)
    write(registered, register_command(registered))
    sender.drain(phone.portal.pk)
    b24_call_id = OutboxCommand.objects.get().result["CALL_ID"]
    # 60 registers queued up, oldest first, then one live call's card.
    waiting = [new_call(phone, n) for n in range(1, 61)]
    for call in waiting:
        write(call, register_command(call))
    write(registered, show_command(registered, [AGENTS["102"]], call_id=b24_call_id))
    sender.drain(phone.portal.pk)
    batches = batches_run(phone)
    assert [len(b) for b in batches] == [50, 11]
    show = OutboxCommand.objects.get(kind=OutboxCommand.Kind.SHOW)
    assert batches[0][0] == f"c{show.pk}"  # the card before all the registers written earlier
    first_registers = [int(k[1:]) for k in batches[0][1:]]
    by_pk = dict(OutboxCommand.objects.values_list("pk", "call_id"))
    assert [by_pk[pk] for pk in first_registers] == [c.pk for c in waiting[:49]]  # then in order written
    assert OutboxCommand.objects.filter(status=Status.DONE).count() == 62


def test_a_method_held_for_its_time_budget_holds_only_its_own_commands(phone):
    phone.b24.limits.durations[REGISTER] = 500.0  # one register uses up the 480 s budget
    first = new_call(phone, 1)
    write(first, register_command(first))
    sender.drain(phone.portal.pk)  # completes (as Bitrix24 does), crossing the budget
    b24_call_id = OutboxCommand.objects.get().result["CALL_ID"]
    second = new_call(phone, 2)
    write(second, register_command(second))
    sender.drain(phone.portal.pk)  # the client saw the budget used up in the answer: register waits
    held = OutboxCommand.objects.get(call=second)
    assert held.error["code"] == sender.HELD_FOR_BUDGET
    assert held.status == Status.PENDING and held.attempts == 0 and held.due_at > timezone.now() + timedelta(
        seconds=60)
    # Another method still goes at once, and the held register is not even tried meanwhile.
    write(first, show_command(first, [AGENTS["101"]], call_id=b24_call_id))
    requests_before = len(phone.b24.request_log)
    sender.drain(phone.portal.pk)
    assert [e["method"] for e in phone.b24.request_log[requests_before:]] == [SHOW]
    assert OutboxCommand.objects.get(kind=OutboxCommand.Kind.SHOW).status == Status.DONE
    held.refresh_from_db()
    assert held.status == Status.PENDING and held.attempts == 0
    assert not [e for e in phone.b24.request_log if e["method"] == REGISTER][1:]  # sent once, before the hold


def test_while_a_live_sender_holds_the_portal_nobody_else_sends(phone):
    call = new_call(phone, 1)
    write(call, register_command(call))
    token = sender.take_lease(phone.portal.pk)
    assert token is not None
    report = sender.drain(phone.portal.pk)
    assert report.busy and requests_sent(phone) == []
    sender.release_lease(phone.portal.pk, token)
    assert not sender.drain(phone.portal.pk).busy
    assert OutboxCommand.objects.get().status == Status.DONE


def test_a_sender_that_died_mid_request_is_taken_over_once_its_lease_ran_out_and_nothing_is_lost(phone):
    call = new_call(phone, 1)
    write(call, register_command(call))
    # The first sender claims the register, Bitrix24 registers the call, and the sender dies before it
    # stores the answer.
    token = sender.take_lease(phone.portal.pk)
    claimed = sender._claim(phone.portal.pk, token, sender.bitrix24_client_for(phone.portal.pk),
                            sender.DrainReport()).commands
    first_answer = sender.bitrix24_client_for(phone.portal.pk).call(REGISTER, claimed[0].planned.params).result
    assert OutboxCommand.objects.get().status == Status.SENDING
    assert sender.drain(phone.portal.pk).busy  # its lease is still running
    OutboxSender.objects.filter(portal=phone.portal).update(until=timezone.now() - timedelta(seconds=1))
    assert phone.portal.pk in selectors.portals_to_kick(timezone.now(), timedelta(seconds=5))

    report = sender.drain(phone.portal.pk)
    row = OutboxCommand.objects.get()
    assert not report.busy and row.status == Status.DONE and row.attempts == 2
    assert row.result["CALL_ID"] == first_answer["CALL_ID"]  # the same EXTERNAL_CALL_ID: the same call
    b24 = phone.b24_calls()
    assert len(b24) == 1 and b24[0]["registrations"] == 2
    # The dead sender's late write changes nothing.
    sender._store(token, claimed, {row.pk: sender._Outcome("failed", error={"type": "Transient"})},
                  sender.DrainReport())
    assert OutboxCommand.objects.get().status == Status.DONE


def test_the_same_key_is_written_once(phone):
    call = new_call(phone, 1)
    write(call, register_command(call))
    write(call, register_command(call))
    assert OutboxCommand.objects.count() == 1


def test_commands_of_calls_finished_longer_than_the_retention_are_pruned(phone, settings):
    settings.CALLS_OUTBOX_RETENTION_SECONDS = 3600
    old, recent, live = new_call(phone, 1), new_call(phone, 2), new_call(phone, 3)
    for call in (old, recent, live):
        write(call, register_command(call))
    now = timezone.now()
    Call.objects.filter(pk=old.pk).update(finished_at=now - timedelta(hours=2))
    Call.objects.filter(pk=recent.pk).update(finished_at=now - timedelta(minutes=5))
    assert services.prune() == 1
    assert set(OutboxCommand.objects.values_list("call_id", flat=True)) == {recent.pk, live.pk}


def test_commands_of_no_call_are_pruned_once_taken_in_longer_than_the_retention_ago(phone, settings):
    settings.CALLS_OUTBOX_RETENTION_SECONDS = 3600
    line = NewCommand("line:0:+74990000001", OutboxCommand.Kind.LINE, "telephony.externalLine.add",
                      {"NUMBER": "+74990000001", "NAME": "Sales", "CRM_AUTO_CREATE": "Y"}, packing.PRIORITY_REGISTER)
    pending, old, recent = (services.enqueue(phone.portal.pk, None, [replace(line, key=f"{line.key}:{n}")])
                            for n in range(3))
    now = timezone.now()
    for rows, taken_in in ((old, now - timedelta(hours=2)), (recent, now - timedelta(minutes=5))):
        OutboxCommand.objects.filter(pk__in=[r.pk for r in rows.values()]).update(status=Status.DONE,
                                                                                  applied_at=taken_in)
    assert services.prune() == 1
    assert set(OutboxCommand.objects.values_list("key", flat=True)) == {*pending, *recent}


def test_depth_counts_open_commands_and_the_age_of_the_oldest_pending(phone):
    call = new_call(phone, 1)
    write(call, register_command(call))
    OutboxCommand.objects.update(created_at=timezone.now() - timedelta(seconds=30))
    depth = selectors.depth(phone.portal.pk)
    assert depth.commands == 1 and 29 < depth.oldest_pending_seconds < 60
    sender.drain(phone.portal.pk)
    assert selectors.depth(phone.portal.pk) == selectors.Depth(0, 0.0)



def test_commands_of_a_portal_that_cannot_be_called_fail_instead_of_waiting_forever(phone):
    from portals.models import Portal

    call = new_call(phone, 1)
    write(call, register_command(call))
    Portal.objects.filter(pk=phone.portal.pk).update(status=Portal.Status.UNINSTALLED)
    report = sender.drain(phone.portal.pk)
    row = OutboxCommand.objects.get()
    assert row.status == Status.FAILED and row.error["code"] == "PORTAL_UNAVAILABLE"
    assert report.settled_calls == {call.pk} and requests_sent(phone) == []


# --- full batches: the sender waits for the request bucket before it claims -------------------------------


def client_with_spent_bucket(phone, on_sleep):
    """The portal's client, its request bucket spent by other requests (the burst used up), sleeping through
    ``on_sleep``: what the test does while the sender waits for room happens there."""
    client = sender.bitrix24_client_for(phone.portal.pk)
    while client.request_wait() == 0:
        client.take_request_slot("another request of the portal")
    client._sleep = on_sleep  # the client's injectable sleep (a constructor argument)
    return client


def test_commands_written_while_the_sender_waits_for_the_bucket_go_in_the_same_batch(phone):
    calls = [new_call(phone, n) for n in range(5)]
    write(calls[0], register_command(calls[0]))
    slept: list[float] = []

    def meanwhile(seconds: float) -> None:
        if not slept:  # four more calls ring while the sender waits for room
            for call in calls[1:]:
                write(call, register_command(call))
        slept.append(seconds)
        time.sleep(seconds)

    client = client_with_spent_bucket(phone, meanwhile)
    report = sender.drain(phone.portal.pk, client=client)

    assert slept and 0 < slept[0] <= 1.0  # one request drains in 1 / rate_drain s
    assert requests_sent(phone) == ["batch"]  # one of the bucket's requests for all five
    assert len(batches_run(phone)[0]) == 5 and report.requests == 1 and report.commands == 5
    assert set(OutboxCommand.objects.values_list("status", flat=True)) == {Status.DONE}
    assert len(phone.b24_calls()) == 5


def test_with_room_in_the_bucket_a_lone_command_goes_at_once(phone):
    slept: list[float] = []
    client = sender.bitrix24_client_for(phone.portal.pk)
    client._sleep = slept.append
    call = new_call(phone, 1)
    write(call, register_command(call))
    sender.drain(phone.portal.pk, client=client)
    assert slept == [] and requests_sent(phone) == [REGISTER]
    assert OutboxCommand.objects.get().status == Status.DONE


def test_a_wait_longer_than_the_bound_ends_the_drain_and_it_comes_back_when_there_is_room(phone, settings):
    settings.CALLS_OUTBOX_BUCKET_WAIT_SECONDS = 0.1  # the bucket needs ~0.5 s for one request
    slept: list[float] = []
    call = new_call(phone, 1)
    write(call, register_command(call))
    before = timezone.now()
    report = sender.drain(phone.portal.pk, client=client_with_spent_bucket(phone, slept.append))
    assert slept == [] and requests_sent(phone) == [] and report.requests == 0
    assert OutboxCommand.objects.get().status == Status.PENDING  # not claimed: nothing attempted
    assert before + timedelta(seconds=0.3) < report.next_due <= timezone.now() + timedelta(seconds=1)


def test_the_request_taken_for_commands_that_may_not_go_yet_goes_back_to_the_bucket(phone):
    from b24client import coordination

    call = new_call(phone, 1)
    rows = write(call, register_command(call), show_command(call, [AGENTS["101"]]))
    # The register is held for later; the show naming it is due, but cannot go before it.
    OutboxCommand.objects.filter(pk=rows[f"call:{call.pk}:register"].pk).update(
        due_at=timezone.now() + timedelta(seconds=60))
    client = sender.bitrix24_client_for(phone.portal.pk)
    client.limiter = coordination.MemoryBackend(clock=lambda: 1_000_000.0)  # a bucket that never drains
    for _ in range(int(client.capacity) - 1):
        client.take_request_slot("another request of the portal")
    assert client.request_wait() == 0  # one request left
    report = sender.drain(phone.portal.pk, client=client)
    assert report.requests == 0 and requests_sent(phone) == []
    assert client.request_wait() == 0  # still there for the next request of the portal


def test_a_calls_reconciler_draining_inline_never_sleeps_for_the_bucket(phone):
    slept: list[float] = []
    call = new_call(phone, 1)
    write(call, register_command(call))
    report = sender.drain(phone.portal.pk, for_call=call.pk, max_requests=3,
                          client=client_with_spent_bucket(phone, slept.append))
    assert slept == [] and requests_sent(phone) == [] and report.requests == 0 and not report.busy
    assert OutboxCommand.objects.get().status == Status.PENDING
    assert report.next_due > timezone.now()  # the portal's drain task comes back for it
