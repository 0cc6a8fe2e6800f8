"""Delivery guarantees of the state machine against a misbehaving Bitrix24 (sandbox fault injection):
lost answers, 503 storms, rate limits, method blocks, long outages, refusals, dead portals; the
dead-letter list and its replay; the sweeper."""

from __future__ import annotations

from datetime import timedelta

from call_scenario_fixtures import *  # noqa: F403  (fixtures: phone, recordings)
from call_scenario_fixtures import AGENTS, drive
from django.utils import timezone

from calls.models import Call, DeadLetter, ExtensionOverride, OutboxCommand, PbxEvent
from calls.sync import dead_letters, reconciler, tasks

REGISTER = "telephony.externalcall.register"
FINISH = "telephony.externalcall.finish"


def statistics(phone) -> list[dict]:
    from b24sandbox import telephony

    return telephony.snapshot(phone.b24)["statistics"]


def sync_once(phone, pbx_call_id: str) -> reconciler.SyncResult:
    for pk in PbxEvent.objects.filter(status=PbxEvent.Status.PENDING).values_list("pk", flat=True):
        reconciler.apply_pbx_event(pk)
    return reconciler.reconcile(phone.call(pbx_call_id).pk, allow_slow=True)


def test_register_whose_answer_was_lost_is_retried_into_the_same_bitrix24_call(phone, sandbox):
    sandbox.faults.add("drop", portal=phone.b24, method=REGISTER, times=1, executes=True)
    scenario = phone.scenario("busy_outgoing")
    phone.play(scenario)
    first = sync_once(phone, scenario.call_id)
    assert first.outcome == "retry"
    call = phone.call(scenario.call_id)
    assert call.register_attempted_at is not None and call.b24_call_id is None
    drive()
    [b24] = phone.b24_calls()
    assert b24["registrations"] == 2  # Bitrix24 saw the retry and answered with the same CALL_ID
    assert b24["external_call_id"] == str(call.uuid)
    assert phone.b24_call(call)["finished"]
    assert len(statistics(phone)) == 1


def test_finish_whose_answer_was_lost_counts_as_done_when_bitrix24_says_not_found(phone, sandbox):
    sandbox.faults.add("drop", portal=phone.b24, method=FINISH, times=1, executes=True)
    scenario = phone.scenario("missed_call")
    phone.play(scenario)
    drive()
    call = phone.call(scenario.call_id)
    assert call.status == Call.Status.DONE and call.finished_at is not None
    assert len(statistics(phone)) == 1
    assert DeadLetter.objects.count() == 0


def test_finish_refused_on_the_first_attempt_is_not_taken_for_done(phone, sandbox):
    scenario = phone.scenario("busy_outgoing")
    phone.play(scenario)
    call_pk = reconciler.apply_pbx_event(PbxEvent.objects.order_by("pk").first().pk)
    drive()
    call = Call.objects.get(pk=call_pk)
    # Someone else finished Bitrix24's call before our first finish attempt.
    Call.objects.filter(pk=call_pk).update(finished_at=None, finish_attempted_at=None, status=Call.Status.PENDING)
    drive()
    call.refresh_from_db()
    assert call.status == Call.Status.DEAD
    assert DeadLetter.objects.get(call=call).reason == "Bitrix24 refused telephony.externalcall.finish"


def test_503_storm_is_ridden_out_with_backoff_and_delivers_once(phone, sandbox):
    sandbox.faults.add("overload", portal=phone.b24, times=6)
    scenario = phone.scenario("ring_group_second_answers")
    phone.play(scenario)
    results = drive()
    assert [r.outcome for r in results].count("retry") >= 6
    call = phone.call(scenario.call_id)
    assert call.status == Call.Status.DONE and call.attempts == 0 and call.last_error == ""
    [b24] = phone.b24_calls()
    assert (b24["finish_user_id"], b24["status_code"]) == (AGENTS["102"], "200")
    assert len(statistics(phone)) == 1


def test_transient_failures_back_off_exponentially_with_jitter_up_to_the_cap(settings):
    settings.CALLS_RETRY_BASE_SECONDS = 2
    settings.CALLS_RETRY_MAX_SECONDS = 60
    settings.CALLS_RETRY_MIN_SECONDS = 0.5
    delays = {attempt: [reconciler.backoff(attempt) for _ in range(300)] for attempt in (1, 3, 10)}
    assert max(delays[1]) <= 2 and max(delays[3]) <= 8 and max(delays[10]) <= 60
    assert min(min(d) for d in delays.values()) >= 0.5
    assert max(delays[10]) > 30  # the cap is reached, not the uncapped 1024 s
    assert len({round(d, 3) for d in delays[10]}) > 200  # jitter spreads retries


def test_rate_limit_is_waited_out_without_counting_as_a_failure(phone, sandbox):
    scenario = phone.scenario("busy_outgoing")
    phone.play(scenario)
    sandbox.set_limits(phone.b24, capacity=1, drain=0.01)
    phone.b24.limits.level = 5.0  # the portal's bucket is full (other apps, browsers)
    result = sync_once(phone, scenario.call_id)
    assert result.outcome == "retry" and result.delay > 0
    call = phone.call(scenario.call_id)
    assert call.attempts == 0 and call.failing_since is None
    assert call.next_attempt_at is not None and call.status == Call.Status.PENDING
    assert "QUERY_LIMIT_EXCEEDED" in call.last_error
    phone.b24.limits.level = 0.0  # the bucket drained
    sandbox.set_limits(phone.b24, capacity=50, drain=2)
    OutboxCommand.objects.update(due_at=timezone.now())  # what waited for it in the outbox (the users) is due
    drive()
    assert phone.call(scenario.call_id).status == Call.Status.DONE
    assert len(phone.b24_calls()) == 1


def test_method_over_its_time_budget_is_rescheduled_not_failed(phone, sandbox):
    phone.b24.limits.durations["telephony.externalcall.show"] = 500.0  # one call uses up the 480 s budget
    scenario = phone.scenario("blind_transfer")
    started, ringing, answered, transferred, *_ = scenario.events
    phone.send(started, ringing)
    drive()  # the first show crosses the budget but completes (as Bitrix24 does)
    phone.send(answered, transferred)
    for pk in PbxEvent.objects.filter(status=PbxEvent.Status.PENDING).values_list("pk", flat=True):
        reconciler.apply_pbx_event(pk)
    result = reconciler.reconcile(phone.call(scenario.call_id).pk)
    assert result.outcome == "retry" and result.delay >= 1
    call = phone.call(scenario.call_id)
    # The client saw the method cross its budget in the answer and holds it itself
    # (docs/bitrix24-contract.md §3.2): the outbox leaves the show out of its requests, and Bitrix24 never
    # has to refuse it with a 429.
    assert call.attempts == 0 and "METHOD_TIME_BUDGET in telephony.externalcall.show" in call.last_error
    assert not [e for e in phone.b24.request_log if e.get("status") == 429]


def test_bitrix24_down_longer_than_the_give_up_time_becomes_a_dead_letter_and_replays_once(phone, sandbox,
                                                                                            settings):
    fault = sandbox.faults.add("error500", portal=phone.b24, times=None)
    scenario = phone.scenario("missed_call")
    phone.play(scenario)
    assert sync_once(phone, scenario.call_id).outcome == "retry"
    call = phone.call(scenario.call_id)
    Call.objects.filter(pk=call.pk).update(failing_since=timezone.now() - timedelta(hours=7))
    assert reconciler.reconcile(call.pk).outcome == "dead"
    [letter] = DeadLetter.objects.filter(call=call, resolved_at=None)
    assert letter.reason == "Bitrix24 kept failing" and "HTTP 500" in letter.detail
    assert phone.b24_calls() == []

    sandbox.faults.remove(fault)  # Bitrix24 is back
    assert dead_letters.replay(letter.pk)
    drive()
    call.refresh_from_db()
    assert call.status == Call.Status.DONE
    assert len(phone.b24_calls()) == 1 and len(statistics(phone)) == 1
    assert not dead_letters.replay(letter.pk)  # already resolved


def test_a_refused_register_is_a_dead_letter_until_fixed_and_replayed(phone):
    ExtensionOverride.objects.create(connection=phone.connection, extension="101", user_id=5)  # dismissed user
    scenario = phone.scenario("busy_outgoing")
    phone.play(scenario)
    drive()
    call = phone.call(scenario.call_id)
    assert call.status == Call.Status.DEAD
    letter = DeadLetter.objects.get(call=call)
    assert letter.reason == "Bitrix24 refused telephony.externalcall.register"
    assert "User is not found or is not active" in letter.detail
    assert phone.b24_calls() == []

    ExtensionOverride.objects.filter(connection=phone.connection).update(user_id=AGENTS["103"])
    dead_letters.replay(letter.pk)
    drive()
    b24 = phone.b24_call(phone.call(scenario.call_id))
    assert (b24["user_id"], b24["status_code"]) == (AGENTS["103"], "486")


def test_calls_of_an_uninstalled_portal_become_dead_letters_and_nothing_is_sent(phone, sandbox):
    scenario = phone.scenario("busy_outgoing")
    phone.play(scenario)
    from portals.models import Portal

    Portal.objects.filter(pk=phone.portal.pk).update(status=Portal.Status.UNINSTALLED)
    drive()
    call = phone.call(scenario.call_id)
    assert call.status == Call.Status.DEAD
    assert DeadLetter.objects.get(call=call).reason == "portal is uninstalled"
    assert phone.b24_calls() == []


def test_dismissing_a_dead_letter_resolves_it_without_replaying(phone, settings):
    settings.CALLS_START_WAIT_SECONDS = 0
    _, ended = phone.scenario("ended_before_started").events
    phone.send(ended)
    drive()
    letter = DeadLetter.objects.get()
    assert dead_letters.dismiss(letter.pk)
    letter.refresh_from_db()
    assert letter.resolved_at is not None and letter.replay_count == 0


# --- the sweeper -------------------------------------------------------------------------------------


def test_sweeper_redispatches_an_event_whose_message_was_lost(phone, run_tasks_inline, settings):
    settings.CALLS_SWEEP_GRACE_SECONDS = 60
    scenario = phone.scenario("busy_outgoing")
    phone.play(scenario)  # stored, but the broker message never came (no on_commit here)
    PbxEvent.objects.update(received_at=timezone.now() - timedelta(minutes=5))
    with run_tasks_inline():
        swept = tasks.sweep_overdue.apply().get()
    assert swept["events"] == 2
    assert PbxEvent.objects.filter(status=PbxEvent.Status.PENDING).count() == 0
    assert phone.b24_call(phone.call(scenario.call_id))["status_code"] == "486"


def test_sweeper_leaves_fresh_events_to_their_own_messages(phone, run_tasks_inline):
    phone.play(phone.scenario("busy_outgoing"))
    with run_tasks_inline():
        swept = tasks.sweep_overdue.apply().get()
    assert swept["events"] == 0
    assert PbxEvent.objects.filter(status=PbxEvent.Status.PENDING).count() == 2


def test_sweeper_resumes_a_call_whose_retry_message_was_lost(phone, sandbox, run_tasks_inline):
    sandbox.faults.add("error500", portal=phone.b24, method=REGISTER, times=1)
    scenario = phone.scenario("busy_outgoing")
    phone.play(scenario)
    assert sync_once(phone, scenario.call_id).outcome == "retry"  # ...and its countdown message is lost
    call = phone.call(scenario.call_id)
    assert call.status == Call.Status.PENDING and phone.b24_calls() == []
    with run_tasks_inline():
        assert tasks.sweep_overdue.apply().get()["calls"] == 0  # not overdue yet
    long_ago = timezone.now() - timedelta(minutes=5)
    Call.objects.filter(pk=call.pk).update(next_attempt_at=long_ago, updated_at=long_ago)
    with run_tasks_inline():
        assert tasks.sweep_overdue.apply().get()["calls"] == 1
    [b24] = phone.b24_calls()
    assert b24["finished"] and b24["status_code"] == "486"


def test_sweeper_dead_letters_calls_that_waited_too_long_for_call_started(phone, run_tasks_inline, settings):
    _, ended = phone.scenario("ended_before_started").events
    phone.send(ended)
    drive()
    call = Call.objects.get()
    assert call.status == Call.Status.WAITING_FOR_START
    Call.objects.filter(pk=call.pk).update(first_fact_at=timezone.now() - timedelta(hours=1))
    with run_tasks_inline():
        tasks.sweep_overdue.apply()
    call.refresh_from_db()
    assert call.status == Call.Status.DEAD


def test_sweeper_finishes_a_call_whose_call_ended_never_came_so_no_card_stays_open(phone, run_tasks_inline):
    started, ringing, answered, *_ = phone.scenario("ring_group_second_answers").events
    phone.send(started, ringing, answered)
    drive()
    call = Call.objects.get()
    assert call.status == Call.Status.LIVE and phone.b24.cards_visible(call.b24_call_id) == {AGENTS["102"]}
    Call.objects.filter(pk=call.pk).update(started_at=timezone.now() - timedelta(hours=5))
    with run_tasks_inline():
        assert tasks.sweep_overdue.apply().get()["stale_calls"] == 1
    b24 = phone.b24_call(call)
    assert (b24["status_code"], b24["finish_user_id"]) == ("OTHER", AGENTS["102"])
    assert "no call.ended" in b24["failed_reason"] and b24["visible_to"] == []
