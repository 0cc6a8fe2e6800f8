"""The portal's pump with a real worker process and Bitrix24 over HTTP: a portal with a backlog of hundreds of
calls does not hold a second portal's call behind it. Each portal's work is one pump message at a time, which
goes to the back of the queue after its slice, so the quiet portal's pump runs between the busy one's turns. And a
burst on one portal runs on several pool processes at once, one per shard of its pump, each call delivered once.
(A SIGKILL mid-pump: tests/e2e/test_delivery_failures_e2e.py.)"""

from __future__ import annotations

import time

import pytest
from call_e2e_fixtures import *  # noqa: F403  (fixtures)
from call_e2e_fixtures import make_live_phone, own_worker
from conftest import wait_until
from django.utils import timezone

from calls.models import Call, PbxEvent, PortalPump

pytestmark = pytest.mark.e2e

BACKLOG_CALLS = 300
EVENTS_PER_POST = 100  # the PBX API's most per request


def test_a_quiet_portals_call_is_registered_while_a_busy_portal_still_has_most_of_its_backlog(
        phone, sandbox_server, live_server, recordings, transactional_db, tmp_path):
    quiet = make_live_phone(sandbox_server, live_server, recordings, domain="quiet.bitrix24.test")
    backlog = [phone.scenario("busy_outgoing", seed=n) for n in range(BACKLOG_CALLS)]
    events = [e for s in backlog for e in s.events]
    # One task at a time: the queue's order shows.
    with own_worker(tmp_path / "worker.log", concurrency=1) as worker:
        for start in range(0, len(events), EVENTS_PER_POST):
            sent = phone.sim.send_events(events[start:start + EVENTS_PER_POST])
            assert sent.response.status == 202, sent.response.body
        call = quiet.scenario("busy_outgoing")
        quiet.play(call)
        posted = time.monotonic()

        def quiet_registered() -> bool:
            return Call.objects.filter(connection=quiet.connection, b24_call_id__isnull=False).exists()

        wait_until(quiet_registered, timeout=120, interval=0.05, what="the quiet portal's register\n"
                   + worker.log()[-3000:])
        waited = time.monotonic() - posted
        busy_left = PbxEvent.objects.filter(connection=phone.connection, status=PbxEvent.Status.PENDING).count()
        # Its register went while most of the busy portal's events still waited to be applied.
        assert busy_left > len(events) // 2, (busy_left, len(events), waited)
        quiet.wait_finished(call.call_id, worker=worker)
        for scenario in backlog[-3:]:
            phone.wait_finished(scenario.call_id, timeout=240, worker=worker)
    assert len(phone.telephony()["calls"]) == BACKLOG_CALLS  # the backlog is registered, each call once
    assert len(quiet.telephony()["calls"]) == 1


BURST_CALLS = 120


def test_a_burst_on_one_portal_is_spread_over_several_pool_processes_each_call_delivered_once(
        phone, transactional_db, tmp_path, monkeypatch):
    monkeypatch.setenv("CALLS_PUMP_SHARDS", "2")  # the worker's, whatever the default
    burst = [phone.scenario("busy_outgoing", seed=n) for n in range(BURST_CALLS)]
    events = [e for s in burst for e in s.events]

    def runners_at_once() -> int:
        """Shards of the portal's pump whose runner is in the middle of a run now: each is a task running in a
        pool process of its own (a prefork process runs one task at a time)."""
        return PortalPump.objects.filter(portal=phone.portal, until__gt=timezone.now()).exclude(token="").count()

    with own_worker(tmp_path / "worker.log", concurrency=4) as worker:
        for start in range(0, len(events), EVENTS_PER_POST):
            sent = phone.sim.send_events(events[start:start + EVENTS_PER_POST])
            assert sent.response.status == 202, sent.response.body
        wait_until(lambda: runners_at_once() >= 2, timeout=60, interval=0.005,
                   what="two of the portal's pump shards running at once\n" + worker.log()[-3000:])
        for scenario in burst:
            phone.wait_finished(scenario.call_id, timeout=240, worker=worker)
    snapshot = phone.telephony()
    assert len(snapshot["calls"]) == BURST_CALLS and all(c["registrations"] == 1 for c in snapshot["calls"])
    assert len(snapshot["statistics"]) == BURST_CALLS  # each finished once
