"""Shared set-up for the click-to-call, callback and routing tests: PBX connections of an installed
sandbox portal, each backed by the PBX simulator's real originate endpoint, and a way to play the
call the PBX places (its signed events) into the app in-process.

Star-importing this module brings in the fixtures (``pbx_server`` and two autouse ones: recordings may
come from the simulator on 127.0.0.1 over http, and the Django cache starts empty); helpers are
imported by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from pbx_api_fixtures import DjangoClientTransport

from calls.connections.services import create_connection
from calls.models import LineSettings, OriginateCommand, PbxConnection, PbxLine
from pbxsim import PbxSimulator
from pbxsim.scenarios import ScenarioParams, build, play
from pbxsim.server import SimServer

__all__ = ["_fresh_cache", "_recordings_from_the_simulator", "pbx_server"]


@pytest.fixture
def pbx_server():
    with SimServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _recordings_from_the_simulator(settings):
    settings.RECORDINGS_ALLOW_PRIVATE_HOSTS = True
    settings.RECORDINGS_ALLOW_HTTP = True


@pytest.fixture(autouse=True)
def _fresh_cache():
    # Portal ids restart with every test database transaction; cached CRM lookups must not leak.
    from django.core.cache import cache

    cache.clear()


@dataclass
class Pbx:
    """One PBX connection of a portal, and the simulator playing that PBX."""

    connection: PbxConnection
    secret: str
    server: SimServer
    client: Any
    lines: list[str] = field(default_factory=list)

    @property
    def public_id(self) -> str:
        return self.connection.public_id

    def simulator(self, base_url: str = "http://testserver", transport: Any = None) -> PbxSimulator:
        return PbxSimulator(base_url, self.public_id, self.secret,
                            transport=transport or DjangoClientTransport(self.client))

    def set_mode(self, mode: str, **options: Any) -> None:
        config = self.server.state.connections[self.public_id]
        config.mode = mode
        for key, value in options.items():
            setattr(config, key, value)

    def commands(self) -> list[dict]:
        return [r.body for r in self.server.state.commands if r.connection_id == self.public_id and r.body]

    def play_originated(self, request_id: str, outcome: str = "answered", *, client_number: str | None = None,
                        line_number: str | None = None, sim: PbxSimulator | None = None) -> list:
        """Play the call the PBX places for the originate command ``request_id`` (as the simulator would;
        ``line_number``: the line the PBX says it called from, instead of the command's)."""
        command = next(c for c in self.commands() if c["request_id"] == request_id)
        params = ScenarioParams(
            client_number=client_number or command["client_number"],
            line_number=line_number or command.get("line_number") or None,
            agents=(command["extension"],),
            origin_request_id=request_id,
            recording_base_url=self.server.recording_base_url,
            call_id=f"orig-{request_id}",
        )
        return play(sim or self.simulator(), build(f"originate_{outcome}", params=params), speed=0)


def connect_pbx(portal: Any, server: SimServer, client: Any, *, name: str = "Main PBX", mode: str = "accept",
                is_default: bool | None = None, lines: tuple[str, ...] = (), originate: bool = True,
                **sim_options: Any) -> Pbx:
    issued = create_connection(portal=portal, name=name, is_default=is_default)
    connection = issued.connection
    if originate:
        connection.originate_url = server.originate_url(connection.public_id)
        # The simulator serves the recordings too; the originate host is not implied (listed explicitly).
        connection.recording_hosts = [urlsplit(server.recording_base_url).hostname]
        connection.save(update_fields=["originate_url", "recording_hosts"])
    server.add_connection(connection.public_id, issued.secret, mode=mode, **sim_options)
    for number in lines:
        PbxLine.objects.create(connection=connection, number=number, bitrix_line_registered=True)
    return Pbx(connection, issued.secret, server, client, list(lines))


def line_routing(pbx: Pbx, number: str, **fields: Any) -> LineSettings:
    line = PbxLine.objects.get(connection=pbx.connection, number=number)
    routing, _ = LineSettings.objects.update_or_create(line=line, defaults=fields)
    return routing


def command_for(call_pk: int) -> OriginateCommand:
    return OriginateCommand.objects.get(call_id=call_pk)
