"""Delivery under failure, with real worker processes and Bitrix24 over HTTP: a worker SIGKILLed in the
middle of a task, a whole worker lost (the sweeper recovers), a Bitrix24 outage, a 503 storm, and forged
signatures. Every event the PBX got a 202 for reaches Bitrix24 exactly once; nothing unsigned does."""

from __future__ import annotations

import base64

import pytest
from call_e2e_fixtures import *  # noqa: F403  (fixtures)
from call_e2e_fixtures import kill_pool_children, kill_whole_worker, own_worker, start_worker, stop_worker
from conftest import wait_until

from calls.models import Call, PbxEvent
from calls.sync import shards, tasks
from calls.sync.conf import pump_settings
from pbxsim import PbxSimulator

pytestmark = pytest.mark.e2e

REGISTER = "telephony.externalcall.register"
FINISH = "telephony.externalcall.finish"


def in_flight(phone, method: str) -> bool:
    """Bitrix24 has done the work of ``method`` and is still holding back its answer (slow fault), sent
    alone or in a batch (the outbox packs a call's commands)."""
    return any(e.get("fault") == "slow" and method in carried(e) for e in phone.b24.request_log)


def carried(entry: dict) -> set[str]:
    """The methods a logged request carried: its own, or its batch's commands'."""
    methods = {entry.get("method", "").lower()}
    cmd = (entry.get("params") or {}).get("cmd") if entry.get("method") == "batch" else None
    if isinstance(cmd, dict):
        methods |= {str(c).partition("?")[0].lower() for c in cmd.values()}
    return methods


@pytest.mark.parametrize("calls", [1, 6], ids=["one call", "a pump shard's batch of six calls"])
def test_worker_killed_mid_register_still_delivers_the_call_exactly_once(phone, sandbox_server, transactional_db,
                                                                       tmp_path, calls):
    # One pool process, so the process killed is the one in the middle of the register: a shard of the portal's
    # pump, which sends the registers of every call whose events it applied in one batch.
    with own_worker(tmp_path / "worker.log", concurrency=1) as worker:
        _kill_mid_register(phone, worker, sandbox_server, calls)


def calls_of_one_shard(phone, calls: int) -> list:
    """Scenarios of ``calls`` calls that fall in one shard of the portal's pump (one runner applies them all)."""
    found, seed = [], 0
    while len(found) < calls:
        scenario = phone.scenario("missed_call", seed=seed)
        seed += 1
        if shards.shard_of(shards.slot_of(phone.connection.pk, scenario.call_id), pump_settings().shards) == 0:
            found.append(scenario)
    return found


def _kill_mid_register(phone, worker, sandbox_server, calls: int) -> None:
    sandbox_server.faults.add("slow", portal=phone.b24, method=REGISTER, delay=4.0, times=1)
    scenarios = calls_of_one_shard(phone, calls)
    sent = phone.sim.send_events([e for s in scenarios for e in s.events])  # one POST: one pump run takes them
    assert sent.response.status == 202, sent.response.body
    wait_until(lambda: in_flight(phone, REGISTER), timeout=30, what="register in flight\n" + worker.log()[-3000:])

    killed = kill_pool_children(worker)  # SIGKILL the processes running tasks, mid-request
    assert killed

    for scenario in scenarios:
        b24 = phone.wait_finished(scenario.call_id, worker=worker)
        assert b24["registrations"] == 2  # the request killed, and its re-send
        assert b24["status_code"] == "304"
    snapshot = phone.telephony()
    assert len(snapshot["calls"]) == calls  # each retried register got the same CALL_ID back
    assert len(snapshot["statistics"]) == calls  # each finished once
    assert "SIGKILL" in worker.log() or "signal 9" in worker.log()


def test_whole_worker_lost_mid_finish_is_recovered_by_the_sweeper_exactly_once(phone, worker, sandbox_server,
                                                                               tmp_path):
    sandbox_server.faults.add("slow", portal=phone.b24, method=FINISH, delay=4.0, times=1)
    scenario = phone.scenario("busy_outgoing")
    phone.play(scenario)
    wait_until(lambda: in_flight(phone, FINISH), timeout=30, what="finish in flight\n" + worker.log()[-3000:])

    kill_whole_worker(worker)  # main process and pool: nothing acks, nothing requeues
    call = Call.objects.get(connection=phone.connection, pbx_call_id=scenario.call_id)
    assert call.finish_attempted_at is not None and call.finished_at is None

    second = start_worker(tmp_path / "second-worker.log")
    try:
        def swept_and_done() -> bool:
            tasks.sweep_overdue.delay()  # what beat does every CALLS_SWEEP_INTERVAL_SECONDS
            return Call.objects.filter(pk=call.pk, status=Call.Status.DONE).exists()

        wait_until(swept_and_done, timeout=60, interval=1.0, what="sweeper recovery\n" + second.log()[-3000:])
    finally:
        stop_worker(second)
    snapshot = phone.telephony()
    assert len(snapshot["calls"]) == 1
    assert len(snapshot["statistics"]) == 1  # the retried finish met "Call is not found" and counted as done
    assert snapshot["calls"][0]["status_code"] == "486"


def test_bitrix24_outage_then_recovery_delivers_every_call_once(phone, worker, sandbox_server):
    outage = sandbox_server.faults.add("error500", portal=phone.b24, times=None)
    names = ("ring_group_second_answers", "missed_call", "busy_outgoing")
    scenarios = [phone.scenario(name) for name in names]
    for scenario in scenarios:
        phone.play(scenario)

    def failing() -> bool:
        return Call.objects.filter(connection=phone.connection, attempts__gte=2).count() == len(scenarios)

    wait_until(failing, timeout=60, what="calls retrying during the outage\n" + worker.log()[-3000:])
    assert phone.telephony()["calls"] == []
    sandbox_server.faults.remove(outage)

    for scenario in scenarios:
        phone.wait_finished(scenario.call_id, worker=worker)
    wait_until(lambda: not Call.objects.exclude(status=Call.Status.DONE).exists(), timeout=60, what="all done")
    snapshot = phone.telephony()
    assert len(snapshot["calls"]) == 3 and len(snapshot["statistics"]) == 3
    assert all(c["registrations"] == 1 for c in snapshot["calls"])


def test_503_storm_across_concurrent_calls_is_ridden_out_exactly_once(phone, worker, sandbox_server):
    sandbox_server.faults.add("overload", portal=phone.b24, times=25)
    scenarios = [phone.scenario("duplicated_and_reordered", seed=seed) for seed in range(4)]
    threads = [phone.play_in_background(s) for s in scenarios]
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.errors, thread.errors
    for scenario in scenarios:
        b24 = phone.wait_finished(scenario.call_id, worker=worker)
        assert (b24["status_code"], b24["duration"], b24["registrations"]) == ("200", 40, 1)
    snapshot = phone.telephony()
    assert len(snapshot["calls"]) == 4 and len(snapshot["statistics"]) == 4
    assert sum(1 for e in phone.b24.request_log if e.get("fault") == "overload") == 25


def test_forged_signatures_never_reach_bitrix24(phone, worker):
    other_secret = b"k" * 32
    forged = PbxSimulator(phone.app_url, phone.connection.public_id, "whsec_" + base64.b64encode(other_secret).decode())
    scenario = phone.scenario("busy_outgoing")
    sent = forged.send_events(list(scenario.events))
    assert sent.response.status == 401

    unsigned = phone.sim.request("POST", "events", b'{"event_id": "x"}', sign=False)
    assert unsigned.response.status == 401

    # A correctly signed control call shows the worker is alive and would have delivered them.
    control = phone.scenario("busy_outgoing")
    phone.play(control)
    phone.wait_finished(control.call_id, worker=worker)
    assert PbxEvent.objects.filter(call_id=scenario.call_id).count() == 0
    assert not Call.objects.filter(pbx_call_id=scenario.call_id).exists()
    assert len(phone.telephony()["calls"]) == 1
