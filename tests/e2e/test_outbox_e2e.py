"""The outbox with real worker processes and Bitrix24 over HTTP: a portal's sender SIGKILLed in the middle
of a batch that carries many calls' commands. A new sender takes over once the dead one's lease ran out
and re-sends exactly what was in flight: every call is registered once and finished once in Bitrix24."""

from __future__ import annotations

import pytest
from call_e2e_fixtures import *  # noqa: F403  (fixtures)
from call_e2e_fixtures import kill_pool_children, own_worker
from conftest import wait_until

from calls.extensions import extension_map
from calls.models import Call, OutboxCommand
from calls.outbox import sender
from calls.outbox import tasks as outbox_tasks
from calls.sync import tasks

pytestmark = pytest.mark.e2e

CALLS = 8


def test_sender_killed_mid_batch_loses_and_duplicates_nothing(phone, sandbox_server, transactional_db, tmp_path):
    # One pool process, busy with the batch when it is killed. On the filesystem broker (the SQLite default) the
    # pool's processes share one job-queue lock that an idle process holds while it waits for a job: killing an
    # idle one with it leaves the lock held and the new processes wait on it for ever (billiard's prefork pool;
    # the Redis transport gives each process its own pipe).
    with own_worker(tmp_path / "worker.log", concurrency=1) as worker:
        _kill_the_sender_mid_batch(phone, worker, sandbox_server)


def _kill_the_sender_mid_batch(phone, worker, sandbox_server) -> None:
    extension_map.sync_extensions(phone.portal.pk)  # a running portal's map (with none, calls wait for it)
    # Another sender holds the portal while the calls come in: their commands pile up in the outbox.
    token = sender.take_lease(phone.portal.pk)
    assert token is not None
    scenarios = [phone.scenario("missed_call", seed=n) for n in range(CALLS)]
    for scenario in scenarios:
        phone.play(scenario)
    registers = OutboxCommand.objects.filter(kind=OutboxCommand.Kind.REGISTER)
    wait_until(lambda: registers.count() == CALLS, timeout=60,
               what="every call's register written\n" + worker.log()[-3000:])

    # It lets go; the worker's sender takes them all in one batch, and is killed while Bitrix24 works on it.
    sandbox_server.faults.add("slow", method="batch", portal=phone.b24, delay=4.0, times=1)
    sender.release_lease(phone.portal.pk, token)
    outbox_tasks.drain_outbox.delay(phone.portal.pk)
    wait_until(lambda: any(e.get("fault") == "slow" for e in phone.b24.request_log), timeout=30,
               what="the batch in flight\n" + worker.log()[-3000:])
    in_flight = registers.filter(status=OutboxCommand.Status.SENDING).count()
    assert in_flight == CALLS  # the registers of every call in one request
    assert kill_pool_children(worker)

    def delivered() -> bool:
        tasks.sweep_overdue.delay()  # what beat does: the calls' sweeper ...
        outbox_tasks.rekick_outboxes.delay()  # ... and the outbox's
        return Call.objects.filter(connection=phone.connection, status=Call.Status.DONE).count() == CALLS

    wait_until(delivered, timeout=120, interval=1.0, what="every call delivered\n" + worker.log()[-4000:])
    snapshot = phone.telephony()
    ours = {c.b24_call_id for c in Call.objects.filter(connection=phone.connection)}
    assert len(snapshot["calls"]) == CALLS and {c["call_id"] for c in snapshot["calls"]} == ours
    assert len({c["external_call_id"] for c in snapshot["calls"]}) == CALLS  # one Bitrix24 call per call
    assert all(c["registrations"] == 2 for c in snapshot["calls"])  # the batch, and its re-send after the kill
    assert len(snapshot["statistics"]) == CALLS  # each finished once
    assert "SIGKILL" in worker.log() or "signal 9" in worker.log()
