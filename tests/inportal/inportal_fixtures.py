"""Helpers for the in-portal API tests: open the app as a Bitrix24 user, then call the API as the page does.

    page = open_page(sandbox, b24, user_id=1)          # the shell Bitrix24 framed, its #app-boot blob
    api = FrameApi(page.token, auth_id=page.auth_id)   # Authorization: Bearer + X-Bitrix24-Auth
    api.get("status").json()
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import pytest

API = "/bitrix24/app/api/v1/"
_BOOT = re.compile(r'<script id="app-boot" type="application/json">(.*?)</script>', re.S)


def boot_of(response: Any) -> dict[str, Any]:
    html = response.content.decode()
    found = _BOOT.search(html)
    assert found, f"no #app-boot in the page ({response.status_code}):\n{html[:1500]}"
    return json.loads(found.group(1))


@dataclass
class OpenedPage:
    response: Any
    boot: dict[str, Any]
    auth_id: str  # the AUTH_ID Bitrix24 posted with the page (what the JS SDK hands the page)

    @property
    def token(self) -> str:
        return self.boot["session"]


def capture_frame_posts(sandbox: Any) -> list[tuple[str, bytes]]:
    """Record each iframe POST's URL and body on its way to our views (to read the AUTH_ID it carried)."""
    seen: list[tuple[str, bytes]] = []
    inner = sandbox.page_transport or sandbox.event_transport

    def transport(url: str, body: bytes, headers: dict[str, str]) -> Any:
        seen.append((url, body))
        return inner(url, body, headers)

    sandbox.page_transport = transport
    return seen


def open_page(sandbox: Any, b24: Any, user_id: int | None = None) -> OpenedPage:
    seen = capture_frame_posts(sandbox)
    response = sandbox.open_app(b24, user_id)
    assert response.status_code == 200, response.content.decode()[:2000]
    auth_id = parse_qs(seen[-1][1].decode())["AUTH_ID"][0]
    return OpenedPage(response, boot_of(response), auth_id)


class FrameApi:
    """The page's side of the API: the session token in a header, the AUTH_ID on writes; no cookies."""

    def __init__(self, token: str | None, *, auth_id: str | None = None) -> None:
        from django.test import Client

        self.client = Client()
        self.token = token
        self.auth_id = auth_id

    def _headers(self, auth_id: str | None) -> dict[str, str]:
        headers = {"host": "app.test"}
        if self.token is not None:
            headers["authorization"] = f"Bearer {self.token}"
        auth = auth_id if auth_id is not None else self.auth_id
        if auth:
            headers["x-bitrix24-auth"] = auth
        return headers

    def request(self, method: str, path: str, body: Any = None, *, auth_id: str | None = None) -> Any:
        data = json.dumps(body) if body is not None else ""
        response = self.client.generic(method, API + path, data=data, content_type="application/json",
                                       secure=True, headers=self._headers(auth_id))
        assert not response.cookies, f"the API set cookies: {response.cookies}"
        return response

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.request("POST", path, body if body is not None else {}, **kw)

    def patch(self, path: str, body: Any, **kw: Any) -> Any:
        return self.request("PATCH", path, body, **kw)

    def put(self, path: str, body: Any, **kw: Any) -> Any:
        return self.request("PUT", path, body, **kw)


class PbxTransport:
    """pbxsim transport: the simulator's exact bytes and headers through Django's test client."""

    def __init__(self) -> None:
        from django.test import Client

        self.client = Client()

    def __call__(self, method: str, url: str, headers: dict[str, str], body: bytes) -> Any:
        from urllib.parse import urlsplit

        from pbxsim import SimResponse

        parts = urlsplit(url)
        extra = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        response = self.client.generic(method, parts.path, data=body, content_type=headers.get("Content-Type", ""),
                                       secure=True, headers={"host": "app.test", **extra})
        return SimResponse(response.status_code, dict(response.headers), response.content)


def call_started(n: int = 1, call_id: str = "call-1", **fields: Any) -> dict[str, Any]:
    return {"event_id": f"evt-{n}", "type": "call.started", "call_id": call_id,
            "occurred_at": f"2025-03-01T09:00:{n % 60:02d}+00:00", "direction": "inbound",
            "client_number": "+74951112233", "line_number": "+74950000000", **fields}


def viewer_checks(b24: Any) -> list[dict[str, Any]]:
    """The batch requests that asked Bitrix24 user.admin (with whose token: ``user_id`` of the entry)."""
    found = []
    for entry in b24.request_log:
        if entry.get("method") != "batch":
            continue
        commands = (entry.get("params") or {}).get("cmd") or {}
        values = commands.values() if isinstance(commands, dict) else commands
        if any(str(c).split("?")[0].lower() == "user.admin" for c in values):
            found.append(entry)
    return found


@pytest.fixture
def admin_page(sandbox, installed_portal) -> OpenedPage:
    return open_page(sandbox, installed_portal.b24, user_id=1)


@pytest.fixture
def admin_api(admin_page) -> FrameApi:
    return FrameApi(admin_page.token, auth_id=admin_page.auth_id)


@pytest.fixture
def other_portal(install_portal) -> Any:
    """A second portal with the app installed (another tenant)."""
    return install_portal("other.bitrix24.test")


@pytest.fixture
def other_api(sandbox, other_portal) -> FrameApi:
    page = open_page(sandbox, other_portal.b24, user_id=1)
    return FrameApi(page.token, auth_id=page.auth_id)


# --- calls flowing through a connection (the worker's loop done inline, as tests/calls does) ---------

CLIENT = "+79165550123"
LINE = "+74951234567"


@dataclass
class Phone:
    portal: Any
    b24: Any
    connection: Any
    secret: str
    sim: Any
    recordings: Any  # pbxsim SimServer serving the recordings

    def play(self, name: str, call_id: str, **params: Any) -> None:
        from pbxsim.scenarios import ScenarioParams, build, play

        defaults: dict[str, Any] = {"client_number": CLIENT, "line_number": LINE, "call_id": call_id,
                                    "recording_base_url": self.recordings.recording_base_url, "recording_delay_s": 300}
        defaults.update(params)
        for sent in play(self.sim, build(name, seed=1, params=ScenarioParams(**defaults)), speed=0):
            assert sent.response.status == 202, sent.response.body
        drive()


def drive(rounds: int = 80) -> None:
    """Apply every pending PBX event, then sync every call with work outstanding, until nothing is left."""
    from calls.models import Call, PbxEvent
    from calls.sync import reconciler

    for _ in range(rounds):
        touched: set[int] = set()
        for pk in PbxEvent.objects.filter(status=PbxEvent.Status.PENDING).order_by("pk").values_list("pk", flat=True):
            call_pk = reconciler.apply_pbx_event(pk)
            if call_pk is not None:
                touched.add(call_pk)
        touched |= set(Call.objects.filter(status=Call.Status.PENDING).values_list("pk", flat=True))
        if not touched:
            return
        for call_pk in sorted(touched):
            reconciler.sync_call(call_pk, allow_slow=True)
    raise AssertionError("calls did not settle")


@pytest.fixture
def phone(installed_portal, settings) -> Any:
    """The installed portal with a PBX connection whose simulator talks to our PBX API in-process and serves
    its recordings over local http (default staff: 1 admin ext 100, 2 Boris ext 101, 3 Clara ext 102)."""
    from urllib.parse import urlsplit

    from calls.connections.services import create_connection
    from pbxsim import PbxSimulator, SimServer

    settings.RECORDINGS_ALLOW_PRIVATE_HOSTS = True
    settings.RECORDINGS_ALLOW_HTTP = True
    with SimServer() as recordings:
        issued = create_connection(portal=installed_portal.portal, name="Main PBX",
                                   recording_hosts=[urlsplit(recordings.base_url).hostname])
        recordings.add_connection(issued.connection.public_id, issued.secret)
        sim = PbxSimulator("https://app.test", issued.connection.public_id, issued.secret, transport=PbxTransport())
        yield Phone(installed_portal.portal, installed_portal.b24, issued.connection, issued.secret, sim, recordings)
