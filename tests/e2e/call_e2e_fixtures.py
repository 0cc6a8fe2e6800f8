"""Every piece real and separate, for the call state machine's end-to-end tests:

* Bitrix24 is the sandbox served over HTTP (``sandbox_server``), with a staff of agents 101-103;
* the connector is Django behind ``live_server`` (the PBX API) plus REAL ``celery worker`` processes;
* the PBX is the simulator: signed events over HTTP to the live server, recordings from its own server.

Star-importing this module brings in the fixtures ``recordings``, ``phone`` (a ``LivePhone``; a test module
may override ``portal_settings`` to change the portal's call settings) and ``worker`` (the first real worker);
helpers are imported by name. Workers are started and stopped by ``benchmarks.harness``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "calls"))

from call_scenario_fixtures import CLIENT, LINE, recordings, staff
from conftest import WorkerProcess, _purge_broker, child_env, install_through_ui, wait_until

from benchmarks import harness
from calls.connections.services import create_connection
from calls.models import Call, PbxLine
from pbxsim import PbxSimulator
from pbxsim.scenarios import Scenario, ScenarioParams, build, play
from pbxsim.server import SimServer

# Short delays so failures and recoveries play out in seconds (production values are in settings.py).
E2E_ENV = {
    "CALLS_RETRY_BASE_SECONDS": "0.3",
    "CALLS_RETRY_MAX_SECONDS": "1.5",
    "CALLS_RETRY_MIN_SECONDS": "0.1",
    "CALLS_FINISH_SETTLE_SECONDS": "1",
    "CALLS_SYNC_LEASE_SECONDS": "3",
    "CALLS_OUTBOX_SENDER_LEASE_SECONDS": "3",
    "CALLS_PUMP_LEASE_SECONDS": "3",
    "CALLS_SWEEP_GRACE_SECONDS": "2",
    "CALLS_START_WAIT_SECONDS": "60",
    "RECORDINGS_ALLOW_HTTP": "1",
    "RECORDINGS_ALLOW_PRIVATE_HOSTS": "1",
}

__all__ = ["phone", "portal_settings", "recordings", "worker"]


@dataclass
class LivePhone:
    sandbox: Any
    portal: Any
    b24: Any
    connection: Any
    secret: str
    sim: PbxSimulator
    recordings: SimServer
    app_url: str

    def scenario(self, name: str, *, seed: int = 1, **params: Any) -> Scenario:
        defaults: dict[str, Any] = {"client_number": CLIENT, "line_number": LINE,
                                    "recording_base_url": self.recordings.recording_base_url,
                                    "call_id": f"{name}-{seed}-{uuid.uuid4().hex[:6]}"}
        defaults.update(params)
        return build(name, seed=seed, params=ScenarioParams(**defaults))

    def play(self, scenario: Scenario, *, speed: float = 0.0) -> None:
        for sent in play(self.sim, scenario, speed=speed):
            assert sent.response.status == 202, (sent.response.status, sent.response.body)

    def play_in_background(self, scenario: Scenario, *, speed: float = 0.0) -> threading.Thread:
        sim = PbxSimulator(self.app_url, self.connection.public_id, self.secret)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                for sent in play(sim, scenario, speed=speed):
                    assert sent.response.status == 202, (sent.response.status, sent.response.body)
            except BaseException as exc:  # reported by the joining test
                errors.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.errors = errors  # type: ignore[attr-defined]
        thread.start()
        return thread

    def telephony(self) -> dict:
        from b24sandbox import telephony

        return telephony.snapshot(self.b24)

    def b24_call_for(self, pbx_call_id: str) -> dict | None:
        call = Call.objects.filter(connection=self.connection, pbx_call_id=pbx_call_id).first()
        if call is None or not call.b24_call_id:
            return None
        return next((c for c in self.telephony()["calls"] if c["call_id"] == call.b24_call_id), None)

    def wait_finished(self, pbx_call_id: str, *, timeout: float = 60, worker: WorkerProcess | None = None) -> dict:
        def finished() -> dict | None:
            b24 = self.b24_call_for(pbx_call_id)
            return b24 if b24 and b24["finished"] else None

        what = f"Bitrix24 finish of {pbx_call_id}" + (f"\n--- worker log ---\n{worker.log()[-4000:]}" if worker else "")
        return wait_until(finished, timeout=timeout, what=what)


def make_live_phone(sandbox_server: Any, live_server: Any, recordings: SimServer, *,
                    domain: str = "calls.bitrix24.test", plan: str = "standard") -> LivePhone:
    b24 = sandbox_server.create_portal(domain, plan=plan, users=staff())
    installed = install_through_ui(sandbox_server, b24)
    # The sandbox runs on a ManualClock, so its leaky bucket would never drain: rate limits are tested
    # in-process (tests/calls/test_call_sync_delivery.py), and switched off here.
    sandbox_server.set_limits(b24, enabled=False)
    issued = create_connection(portal=installed.portal, name="Main PBX")
    connection = issued.connection
    connection.recording_hosts = ["127.0.0.1"]
    connection.save(update_fields=["recording_hosts"])
    recordings.add_connection(connection.public_id, issued.secret)
    # The PBX declared its line (PUT …/lines); Bitrix24 has not heard of it yet, so the first call adds it.
    PbxLine.objects.create(connection=connection, number=LINE, name="Main line")
    sim = PbxSimulator(live_server.url, connection.public_id, issued.secret)
    return LivePhone(sandbox_server, installed.portal, b24, connection, issued.secret, sim, recordings,
                     live_server.url)


@pytest.fixture
def portal_settings() -> dict[str, Any]:
    """Call settings of the ``phone`` portal, as the app sets them (``calls.settings.services.update_portal_settings``;
    override in a test module)."""
    return {}


@pytest.fixture
def phone(sandbox_server, live_server, recordings, settings, monkeypatch, portal_settings) -> LivePhone:
    for key, value in E2E_ENV.items():
        monkeypatch.setenv(key, value)
    settings.RECORDINGS_ALLOW_PRIVATE_HOSTS = True
    settings.RECORDINGS_ALLOW_HTTP = True
    phone = make_live_phone(sandbox_server, live_server, recordings)
    if portal_settings:
        from calls.settings.services import update_portal_settings

        update_portal_settings(phone.portal.pk, portal_settings)
    return phone


@pytest.fixture
def worker(phone, celery_worker_process) -> WorkerProcess:
    """The ``celery_worker_process`` worker, started after ``phone`` switched the settings it inherits."""
    return celery_worker_process


def start_worker(log_path: Path, *, concurrency: int = 2) -> WorkerProcess:
    """Another real worker process (the ``celery_worker_process`` fixture gives the first one)."""
    try:
        process = harness.start_celery_worker(log_path, child_env(), name=f"extra-{uuid.uuid4().hex[:8]}@%h",
                                              concurrency=concurrency)
    except harness.WorkerDidNotStart as exc:
        raise AssertionError(str(exc)) from None
    return WorkerProcess(process, log_path)


def stop_worker(worker: WorkerProcess) -> None:
    harness.stop_process_group(worker.process)


@contextlib.contextmanager
def own_worker(log_path: Path, *, concurrency: int = 2) -> Iterator[WorkerProcess]:
    """A worker of the test's own (instead of ``worker``) on an empty broker, for a test that kills its pool
    processes and needs to know how many there are; stopped at the end, whatever happened."""
    _purge_broker()
    worker = start_worker(log_path, concurrency=concurrency)
    try:
        yield worker
    finally:
        stop_worker(worker)


def pool_children(worker: WorkerProcess) -> list[int]:
    """Pids of the worker's prefork pool processes (they run the tasks)."""
    return harness.child_pids(worker.process.pid)


def kill_pool_children(worker: WorkerProcess) -> list[int]:
    """SIGKILL every pool process. With more than one, give the worker ``concurrency=1``: on the filesystem
    broker an idle pool process holds the pool's shared job-queue lock while it waits, and killed with it the
    pool never gets a job again."""
    killed = pool_children(worker)
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    return killed


def kill_whole_worker(worker: WorkerProcess) -> None:
    os.killpg(worker.process.pid, signal.SIGKILL)
    worker.process.wait(timeout=10)
