"""Tenants, connections and a PBX simulator wired to the app in-process (Django test client)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest

from calls.connections.services import create_connection
from calls.models import PbxConnection
from pbxsim import PbxSimulator, SimResponse
from portals.models import Portal

# Star-importing this module brings in the fixtures; helpers are imported by name.
__all__ = ["other_tenant", "tenant"]

_counter = itertools.count(1)


class DjangoClientTransport:
    """pbxsim transport that sends the simulator's exact bytes and headers through Django's test client."""

    def __init__(self, client) -> None:
        self.client = client

    def __call__(self, method: str, url: str, headers: dict[str, str], body: bytes) -> SimResponse:
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        extra = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        response = self.client.generic(
            method, path, data=body, content_type=headers.get("Content-Type", ""), headers=extra
        )
        return SimResponse(response.status_code, dict(response.headers), response.content)


def make_portal(*, status: str = Portal.Status.ACTIVE, default_country: str = "RU") -> Portal:
    n = next(_counter)
    return Portal.objects.create(
        member_id=f"member-{n:04d}",
        domain=f"tenant{n}.bitrix24.test",
        client_endpoint=f"https://tenant{n}.bitrix24.test/rest/",
        server_endpoint="https://oauth.bitrix.info/rest/",
        status=status,
        default_country=default_country,
    )


@dataclass
class Tenant:
    portal: Portal
    connection: PbxConnection
    secret: str
    sim: PbxSimulator


def make_tenant(client, *, portal: Portal | None = None, **connection_kwargs) -> Tenant:
    portal = portal or make_portal()
    issued = create_connection(portal=portal, name=connection_kwargs.pop("name", "Main PBX"), **connection_kwargs)
    sim = PbxSimulator("http://testserver", issued.connection.public_id, issued.secret,
                       transport=DjangoClientTransport(client))
    return Tenant(portal, issued.connection, issued.secret, sim)


@pytest.fixture
def tenant(db, client) -> Tenant:
    return make_tenant(client, originate_url="https://pbx.tenant-a.example/originate",
                       recording_hosts=["pbx.tenant-a.example"])


@pytest.fixture
def other_tenant(db, client) -> Tenant:
    return make_tenant(client, originate_url="https://pbx.tenant-b.example/originate",
                       recording_hosts=["pbx.tenant-b.example"])


def event(n: int = 1, *, call_id: str = "call-1", type: str = "call.answered", **fields) -> dict:
    base = {
        "event_id": f"evt-{n}",
        "type": type,
        "call_id": call_id,
        "occurred_at": datetime(2025, 3, 1, 9, 0, n % 60, tzinfo=UTC).isoformat(),
    }
    if type == "call.answered":
        base["extension"] = "101"
    base.update(fields)
    return base
