"""A change of a portal's or connection's state applies to the very next PBX request in every process.

The PBX API keeps auth material in process memory; here a second, real web process (gunicorn) serves the
PBX while this process uninstalls, reinstalls or disables. The second process keeps its memory for 300 s,
so only the shared invalidation epoch can make it see the change.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from conftest import ROOT, child_env, install_through_ui, wait_until

from benchmarks import harness
from calls.connections.services import create_connection
from calls.models import PbxConnection
from pbxsim import PbxSimulator
from portals.models import Portal

pytestmark = pytest.mark.e2e

PORTS = range(8100, 8110)


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 8100-8109")


@pytest.fixture
def second_web_process(sandbox_server, tmp_path) -> Iterator[str]:
    """gunicorn (one worker) on this run's test database and cache; yields its base URL."""
    port = _free_port()
    log = tmp_path / "web.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "telephony_app.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1",
         "--log-level", "warning"],
        cwd=ROOT, env=child_env(PBX_AUTH_CACHE_SECONDS="300"), stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(f"{base}/api/pbx/v1/schema/", timeout=1).status_code == 200
        except requests.RequestException:
            return process.poll() is not None  # died: stop waiting, the assertion below says so
    try:
        wait_until(up, timeout=60, what="gunicorn to start")
        assert process.poll() is None, Path(log).read_text(errors="replace")
        yield base
    finally:
        harness.stop_process_group(process)


@pytest.fixture
def pbx(sandbox_server, second_web_process):
    sb = sandbox_server
    b24 = sb.create_portal("epoch.bitrix24.test")
    portal = install_through_ui(sb, b24).portal
    issued = create_connection(portal=portal, name="Main PBX")
    sim = PbxSimulator(second_web_process, issued.connection.public_id, issued.secret)
    return sb, b24, portal, issued.connection, sim


def _event(n: int) -> dict:
    return {"event_id": f"evt-{n}", "type": "call.started", "call_id": f"call-{n}",
            "occurred_at": "2025-03-01T12:00:00+03:00", "direction": "inbound",
            "client_number": "+79165550123", "line_number": "+74951234567"}


def test_a_pbx_event_right_after_onappuninstall_gets_409_from_another_process_and_202_after_a_reinstall(pbx):
    sb, b24, portal, _connection, sim = pbx
    assert sim.send_events(_event(1)).response.status == 202  # the other process now remembers the connection

    sb.uninstall(b24, clean=False)
    sb.flush_events()  # ONAPPUNINSTALL reaches this process: confirmed, the portal is switched off
    assert Portal.objects.get(pk=portal.pk).status == Portal.Status.UNINSTALLED

    refused = sim.send_events(_event(2)).response
    assert (refused.status, refused.json()["error"]) == (409, "portal_uninstalled")

    install_through_ui(sb, b24)  # reinstalled: the same connection works again at once
    assert sim.send_events(_event(3)).response.status == 202


def test_a_connection_disabled_by_a_bulk_update_is_refused_by_another_process_at_once(pbx):
    _sb, _b24, _portal, connection, sim = pbx
    assert sim.send_events(_event(1)).response.status == 202

    PbxConnection.objects.filter(pk=connection.pk).update(enabled=False)

    refused = sim.send_events(_event(2)).response
    assert (refused.status, refused.json()["error"]) == (409, "connection_disabled")
