"""Set-up for the call state machine tests: a sandbox portal with agents 101-103, a PBX connection whose
simulator talks to our PBX API in-process, a real HTTP server for recordings, and ``drive()``, which does
synchronously what the Celery worker does (apply inbox events, sync calls until they settle).

Star-importing this module brings in the fixtures ``recordings`` (the simulator's recording server) and
``phone`` (a ``PhonePortal``, recordings allowed from it over local http); helpers are imported by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.utils import timezone
from pbx_api_fixtures import DjangoClientTransport

from calls.connections.services import create_connection
from calls.models import Call, OutboxCommand, PbxConnection, PbxEvent, PbxLine
from calls.outbox import sender
from calls.sync import reconciler
from pbxsim import PbxSimulator
from pbxsim.scenarios import Scenario, ScenarioParams, build, play
from pbxsim.server import SimServer

CLIENT = "+79165550123"
LINE = "+74951234567"
# user id by extension on the sandbox portal
AGENTS = {"100": 1, "101": 2, "102": 3, "103": 4}

__all__ = ["phone", "recordings"]


def staff() -> list:
    from b24sandbox.state import User

    return [
        User(1, "Anna", "Admin", "anna@example.com", is_admin=True, uf_phone_inner="100"),
        User(2, "Boris", "Agent", "boris@example.com", uf_phone_inner="101"),
        User(3, "Clara", "Agent", "clara@example.com", uf_phone_inner="102"),
        User(4, "Denis", "Agent", "denis@example.com", uf_phone_inner="103"),
        User(5, "Eva", "Former", "eva@example.com", active=False, uf_phone_inner="104"),
        User(6, "Fedor", "Nophone", "fedor@example.com", uf_phone_inner=None),
    ]


@dataclass
class PhonePortal:
    portal: Any  # portals.models.Portal
    b24: Any  # b24sandbox portal
    connection: PbxConnection
    secret: str
    sim: PbxSimulator
    recordings: SimServer

    def scenario(self, name: str, *, seed: int = 1, **params: Any) -> Scenario:
        defaults: dict[str, Any] = {"client_number": CLIENT, "line_number": LINE,
                                    "recording_base_url": self.recordings.recording_base_url,
                                    "call_id": f"{name}-{seed}", "recording_delay_s": 300}
        defaults.update(params)
        return build(name, seed=seed, params=ScenarioParams(**defaults))

    def play(self, scenario: Scenario) -> None:
        for sent in play(self.sim, scenario, speed=0):
            assert sent.response.status == 202, sent.response.body

    def send(self, *events: dict) -> None:
        sent = self.sim.send_events(list(events) if len(events) > 1 else events[0])
        assert sent.response.status == 202, sent.response.body

    def call(self, pbx_call_id: str) -> Call:
        return Call.objects.get(connection=self.connection, pbx_call_id=pbx_call_id)

    def b24_calls(self) -> list[dict]:
        from b24sandbox import telephony

        return telephony.snapshot(self.b24)["calls"]

    def b24_call(self, call: Call) -> dict:
        call.refresh_from_db()
        matches = [c for c in self.b24_calls() if c["call_id"] == call.b24_call_id]
        assert len(matches) == 1, self.b24_calls()
        return matches[0]


def make_phone_portal(sandbox: Any, client: Any, recordings: SimServer, *, domain: str = "calls.bitrix24.test",
                      plan: str = "standard") -> PhonePortal:
    from conftest import install_through_ui

    b24 = sandbox.create_portal(domain, plan=plan, users=staff())
    installed = install_through_ui(sandbox, b24)
    issued = create_connection(portal=installed.portal, name="Main PBX")
    connection = issued.connection
    connection.recording_hosts = [urlsplit(recordings.base_url).hostname]
    connection.save(update_fields=["recording_hosts"])
    recordings.add_connection(connection.public_id, issued.secret)
    # The PBX declared its line (PUT …/lines); Bitrix24 has not heard of it yet, so the first call adds it.
    PbxLine.objects.create(connection=connection, number=LINE, name="Main line")
    sim = PbxSimulator("http://testserver", connection.public_id, issued.secret,
                       transport=DjangoClientTransport(client))
    return PhonePortal(installed.portal, b24, connection, issued.secret, sim, recordings)


@pytest.fixture
def recordings():
    with SimServer() as server:
        yield server


@pytest.fixture
def phone(sandbox, client, recordings, db, settings) -> PhonePortal:
    settings.RECORDINGS_ALLOW_PRIVATE_HOSTS = True
    settings.RECORDINGS_ALLOW_HTTP = True
    return make_phone_portal(sandbox, client, recordings)


def drive(*, rounds: int = 80) -> list[reconciler.SyncResult]:
    """What the worker does, synchronously and without waiting out delays: apply every pending inbox
    event, then sync every call with work outstanding, then run the drain of each portal whose outbox still
    has due commands (a call's sync leaves them to that task when the request bucket is empty), until nothing
    is left to do."""
    results: list[reconciler.SyncResult] = []
    for _ in range(rounds):
        touched: set[int] = set()
        for pk in PbxEvent.objects.filter(status=PbxEvent.Status.PENDING).order_by("pk").values_list("pk", flat=True):
            call_pk = reconciler.apply_pbx_event(pk)
            if call_pk is not None:
                touched.add(call_pk)
        touched |= set(Call.objects.filter(status=Call.Status.PENDING).values_list("pk", flat=True))
        if not touched:
            return results
        for call_pk in sorted(touched):
            results.append(reconciler.reconcile(call_pk, allow_slow=True))
        due = OutboxCommand.objects.filter(status=OutboxCommand.Status.PENDING, due_at__lte=timezone.now())
        for portal_id in sorted(set(due.values_list("portal_id", flat=True))):
            sender.drain(portal_id)
    raise AssertionError(f"calls did not settle after {rounds} rounds: {results[-5:]}")
