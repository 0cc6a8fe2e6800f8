"""The outbox with real worker processes and Bitrix24 over HTTP: a portal's sender SIGKILLed in the middle
of a request that carries many calls' commands. A new sender takes over once the dead one's lease ran out
and re-sends exactly what was in flight: every call is registered once and finished once in Bitrix24."""

from __future__ import annotations

import pytest
from call_e2e_fixtures import *  # noqa: F403  (fixtures)
from call_e2e_fixtures import kill_pool_children, start_worker, stop_worker
from conftest import wait_until

from calls.models import Call, OutboxCommand
from calls.outbox import tasks as outbox_tasks
from calls.sync import tasks

pytestmark = pytest.mark.e2e

REGISTER = "telephony.externalcall.register"
CALLS = 8


def test_sender_killed_mid_batch_loses_and_duplicates_nothing(phone, sandbox_server, transactional_db, tmp_path):
    from conftest import _purge_broker

    _purge_broker()
    worker = start_worker(tmp_path / "worker.log", concurrency=2)
    try:
        _kill_the_sender_mid_batch(phone, worker, sandbox_server)
    finally:
        stop_worker(worker)


def _kill_the_sender_mid_batch(phone, worker, sandbox_server) -> None:
    # The first request carrying a register is held up: the calls behind it queue in the outbox.
    sandbox_server.faults.add("slow", portal=phone.b24, method=REGISTER, delay=3.0, times=1)
    first = phone.scenario("missed_call", seed=0)
    phone.play(first)
    wait_until(lambda: _slow_in_flight(phone), timeout=30, what="register in flight\n" + worker.log()[-3000:])
    others = [phone.scenario("missed_call", seed=n) for n in range(1, CALLS)]
    for scenario in others:
        phone.play(scenario)
    wait_until(lambda: OutboxCommand.objects.filter(kind=OutboxCommand.Kind.REGISTER).count() == CALLS,
               timeout=30, what="every call's register written\n" + worker.log()[-3000:])
    # The sender then takes the piled-up registers in one batch: kill it while that batch is in flight.
    sandbox_server.faults.add("slow", method="batch", portal=phone.b24, delay=3.0, times=1)
    wait_until(lambda: _batch_in_flight(phone), timeout=30, what="batch in flight\n" + worker.log()[-3000:])
    assert OutboxCommand.objects.filter(status=OutboxCommand.Status.SENDING).count() > 1
    assert kill_pool_children(worker)

    def delivered() -> bool:
        tasks.sweep_overdue.delay()  # what beat does: the calls' sweeper ...
        outbox_tasks.rekick_outboxes.delay()  # ... and the outbox's
        return Call.objects.filter(connection=phone.connection, status=Call.Status.DONE).count() == CALLS

    wait_until(delivered, timeout=90, interval=1.0, what="every call delivered\n" + worker.log()[-4000:])
    snapshot = phone.telephony()
    ours = {c.b24_call_id for c in Call.objects.filter(connection=phone.connection)}
    assert len(snapshot["calls"]) == CALLS and {c["call_id"] for c in snapshot["calls"]} == ours
    assert len({c["external_call_id"] for c in snapshot["calls"]}) == CALLS  # one Bitrix24 call per call
    assert len(snapshot["statistics"]) == CALLS  # each finished once
    assert "SIGKILL" in worker.log() or "signal 9" in worker.log()


def _slow_in_flight(phone) -> bool:
    return any(e.get("fault") == "slow" for e in phone.b24.request_log)


def _batch_in_flight(phone) -> bool:
    return sum(1 for e in phone.b24.request_log if e.get("fault") == "slow") >= 2
