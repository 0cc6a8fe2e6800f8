"""Several real processes against the sandbox server: the worker, a refresh race, a shared rate limit."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import install_through_ui, run_python_processes, wait_until

from b24sandbox.clock import RealClock
from portals.install import BOUND_EVENTS
from portals.models import Bitrix24Event, Portal, PortalCredential, RestCallLog

CHILD = Path(__file__).with_name("portal_calls_child.py")

pytestmark = pytest.mark.e2e


def test_the_celery_worker_process_sets_up_a_portal_from_onappinstall_and_purges_it_on_clean_uninstall(
    sandbox_server, celery_worker_process
):
    sb = sandbox_server
    b24 = sb.create_portal("acme.bitrix24.test")
    sb.page_transport = lambda url, body, headers: 200  # only ONAPPINSTALL reaches us
    sb.install_ui(b24)
    sb.install_finish(b24)

    sb.send_onappinstall(b24)

    wait_until(lambda: Bitrix24Event.objects.filter(event="ONAPPINSTALL", status="done").exists(),
               timeout=60, what="the worker to process ONAPPINSTALL\n" + celery_worker_process.log()[-3000:])
    assert {b.event for b in b24.event_bindings} == set(BOUND_EVENTS)
    portal = Portal.objects.get(member_id=b24.member_id)
    assert portal.plan == "standard"
    Portal.objects.filter(pk=portal.pk).update(settings={"pbx": "x"})

    sb.uninstall(b24, clean=True)

    wait_until(lambda: Portal.objects.get(pk=portal.pk).settings == {}, timeout=60,
               what="the worker to purge the portal's data")
    assert not PortalCredential.objects.filter(portal=portal).exists()


def test_eight_processes_hitting_an_expired_token_refresh_it_exactly_once(sandbox_server, tmp_path):
    sb = sandbox_server
    b24 = sb.create_portal("race.bitrix24.test")
    portal = install_through_ui(sb, b24).portal
    sb.clock.advance(3601)  # the stored access token has expired

    results = run_python_processes(CHILD, [[str(portal.pk), "profile"]] * 8, barrier_dir=tmp_path)

    assert [r["errors"] for r in results] == [[]] * 8
    assert sum(r["ok"] for r in results) == 8
    refreshes = [t for t in sb.tokens.by_refresh.values() if t.member_id == b24.member_id and t.refresh_used]
    assert len(refreshes) == 1  # one refresh at the OAuth server: the refresh token was never reused
    assert RestCallLog.objects.filter(portal=portal, method="oauth.refresh_token").count() == 1
    portal.refresh_from_db()
    assert portal.status == Portal.Status.ACTIVE
    assert PortalCredential.objects.get(portal=portal).refreshed_count == 1


def test_a_burst_on_one_portal_is_paced_below_bitrix24s_limit_while_another_portal_goes_straight_through(
    start_sandbox_server, tmp_path
):
    sb = start_sandbox_server(RealClock())
    busy_b24 = sb.create_portal("busy.bitrix24.test")
    quiet_b24 = sb.create_portal("quiet.bitrix24.test")
    busy = install_through_ui(sb, busy_b24).portal
    quiet = install_through_ui(sb, quiet_b24).portal
    # A fast drain on both sides keeps the test to seconds; our side keeps its usual 20 % head-room.
    for b24, portal in ((busy_b24, busy), (quiet_b24, quiet)):
        sb.set_limits(b24, capacity=50, drain=100)
        Portal.objects.filter(pk=portal.pk).update(rate_capacity=40, rate_drain=80)
    busy_b24.request_log.clear()
    quiet_b24.request_log.clear()

    results = run_python_processes(
        CHILD,
        [[str(busy.pk), "server.time", "--count", "100"]] * 5 + [[str(quiet.pk), "server.time", "--count", "20"]],
        barrier_dir=tmp_path,
    )

    burst, other = results[:5], results[5]
    assert [r["errors"] for r in results] == [[]] * 6
    assert sum(r["ok"] for r in burst) == 500 and other["ok"] == 20
    statuses = [e["status"] for e in busy_b24.request_log]
    assert len(statuses) == 500 and set(statuses) == {200}, "Bitrix24 answered 503 to the burst"
    assert [e["status"] for e in quiet_b24.request_log] == [200] * 20
    # The quiet portal did not queue behind the busy one: it was done long before the burst was.
    assert other["finished"] < max(r["finished"] for r in burst)
    burst_seconds = max(r["finished"] for r in burst) - min(r["started"] for r in burst)
    assert burst_seconds >= (500 - 40) / 80 * 0.9  # paced by the shared bucket (40 burst, 80/s)
