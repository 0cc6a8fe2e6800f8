"""A Redis restart under a real worker, idle and busy: the worker reconnects by itself and goes on
processing, and the task that was running when Redis went away still finishes its work.

The broker is a redis-server of the test's own (``benchmarks.harness.RedisServer``), stopped and started
again on the same port; the worker is a real ``celery worker`` process on the test database.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator

import pytest
from conftest import child_env, wait_until

from benchmarks import harness
from portals.models import Bitrix24Event

pytestmark = pytest.mark.e2e


@pytest.fixture
def broker(tmp_path) -> Iterator[harness.RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = harness.RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sandbox_rt(start_sandbox_server):
    from b24sandbox.clock import RealClock

    sb = start_sandbox_server(RealClock())  # injected slow answers take real time
    sb.page_transport = lambda url, body, headers: 200  # only ONAPPINSTALL reaches us
    sb.hold_events = True  # the test delivers them (flush_events), not the server's thread
    return sb


@pytest.fixture
def worker(sandbox_rt, broker, tmp_path, settings) -> Iterator[harness.subprocess.Popen]:
    log = tmp_path / "worker.log"
    env = child_env(CELERY_BROKER_URL=broker.url)
    process = harness.start_celery_worker(log, env, name=f"blip-{uuid.uuid4().hex[:8]}@%h")
    process.log = log  # type: ignore[attr-defined]
    yield process
    harness.stop_process_group(process)


def _publish(broker: harness.RedisServer, settings, event_id: int) -> None:
    """What the web tier's ``delay_on_commit`` sends, onto the restartable broker."""
    from portals.tasks import process_bitrix24_event
    from telephony_app.celery import app

    options = {"visibility_timeout": 3600, "global_keyprefix": f"{settings.CELERY_BROKER_NAMESPACE}:"}
    with app.connection_for_write(broker.url, transport_options=options) as conn:
        process_bitrix24_event.apply_async((event_id,), connection=conn)


def _install_event(sandbox, domain: str) -> int:
    """An ONAPPINSTALL through our event view (stored, verified). The view's own message goes to this
    process's configured broker, which no worker here reads; the test sends it to the worker's broker."""
    b24 = sandbox.create_portal(domain)
    sandbox.install_ui(b24)
    sandbox.install_finish(b24)
    sandbox.send_onappinstall(b24)
    sandbox.flush_events()  # delivered here and now (events are held: see sandbox_rt)
    return Bitrix24Event.objects.get(portal__member_id=b24.member_id, event="ONAPPINSTALL").pk


def _status(event_id: int) -> str:
    return Bitrix24Event.objects.get(pk=event_id).status


def _log(worker) -> str:
    return worker.log.read_text(errors="replace")[-4000:]


def test_an_idle_worker_reconnects_after_a_redis_restart_and_processes_new_work(
    sandbox_rt, broker, worker, settings
):
    before = _install_event(sandbox_rt, "before.bitrix24.test")
    _publish(broker, settings, before)
    wait_until(lambda: _status(before) == "done", timeout=60, what="the first event\n" + _log(worker))

    broker.stop()
    wait_until(lambda: "Connection to broker lost" in worker.log.read_text(errors="replace"), timeout=30,
               what="the worker to notice")
    time.sleep(3)  # an outage, not a blink
    broker.start()

    after = _install_event(sandbox_rt, "after.bitrix24.test")
    _publish(broker, settings, after)
    wait_until(lambda: _status(after) == "done", timeout=90, what="work sent after the restart\n" + _log(worker))
    assert worker.poll() is None, _log(worker)


def test_a_busy_worker_survives_a_redis_restart_finishes_its_task_and_goes_on(
    sandbox_rt, broker, worker, settings
):
    busy = _install_event(sandbox_rt, "busy.bitrix24.test")
    # The task will be in the middle of a Bitrix24 call (event.bind answering in 6 s) when Redis goes away.
    sandbox_rt.faults.add("slow", method="event.bind", delay=6, times=1)
    _publish(broker, settings, busy)
    wait_until(lambda: _status(busy) == "processing", timeout=60, what="the task to start\n" + _log(worker))

    broker.stop()
    # The work itself needs only the database and Bitrix24: it finishes while the broker is away.
    wait_until(lambda: _status(busy) == "done", timeout=60, what="the running task\n" + _log(worker))
    time.sleep(1)
    broker.start()

    after = _install_event(sandbox_rt, "next.bitrix24.test")
    _publish(broker, settings, after)
    wait_until(lambda: _status(after) == "done", timeout=90, what="work sent after the restart\n" + _log(worker))
    assert worker.poll() is None, _log(worker)
    assert "Unrecoverable error" not in worker.log.read_text(errors="replace")
    assert Bitrix24Event.objects.get(pk=busy).attempts == 1  # done once
