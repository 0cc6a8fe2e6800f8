"""Helpers and fixtures for tests that run against the sandbox (the sandbox's own suite, product tests, a PBX
vendor's tests). Import the fixtures into a conftest: ``from b24sandbox.pytest_plugin import *  # noqa``.

    def test_click(b24_sandbox, b24_installed, b24_inbox):
        call_id = b24_sandbox.click_to_call(b24_installed, 2, "+74951234567")
        assert b24_inbox.events("ONEXTERNALCALLSTART")[0].form["data"]["CALL_ID"] == call_id
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from b24sandbox.clock import ManualClock
from b24sandbox.phparray import flatten, parse_query
from b24sandbox.sandbox import Sandbox
from b24sandbox.state import Portal

APP_URL = "https://app.example.test/b24/app/"
INSTALLER_URL = "https://app.example.test/b24/install/"
INSTALL_EVENT_URL = "https://app.example.test/b24/install-event/"
EVENT_URL = "https://app.example.test/b24/events/"
CLIENT_ID = "local.sandbox-tests"
CLIENT_SECRET = "sandbox-tests-secret"


@dataclass
class Received:
    """One POST the sandbox sent to the app (an event or an iframe page)."""

    url: str
    body: bytes
    headers: dict[str, str]

    @property
    def form(self) -> dict[str, Any]:
        """The body parsed the way PHP/Django read it, nested (``form["data"]["CALL_ID"]``)."""
        return parse_query(self.body.decode("ascii"))

    @property
    def flat(self) -> dict[str, str]:
        """The body as flat keys (``flat["data[CALL_ID]"]``), as ``request.POST`` sees it."""
        return {k: v[0] for k, v in parse_qs(self.body.decode("ascii"), keep_blank_values=True).items()}

    @property
    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.url).query).items()}

    @property
    def event(self) -> str | None:
        return self.flat.get("event")


@dataclass
class AppInbox:
    """A transport standing in for the app: records everything and answers ``status`` (or raises ``error``)."""

    status: int = 200
    error: Exception | None = None
    received: list[Received] = field(default_factory=list)

    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        self.received.append(Received(url, body, dict(headers)))
        if self.error is not None:
            raise self.error
        return self.status

    def events(self, name: str | None = None) -> list[Received]:
        return [r for r in self.received if r.event is not None and (name is None or r.event == name.upper())]

    def pages(self) -> list[Received]:
        return [r for r in self.received if r.event is None]

    def clear(self) -> None:
        self.received.clear()


class RestCaller:
    """Calls a sandbox portal's REST over HTTP (through requests, so it goes through the real adapter)."""

    def __init__(self, sb: Sandbox, portal: Portal, token: str | None = None) -> None:
        self.sb = sb
        self.portal = portal
        self.token = token

    def url(self, method: str, *, webhook: tuple[int, str] | None = None, scheme: str | None = None) -> str:
        base = self.sb.portal_url(self.portal)
        if scheme is not None:
            base = scheme + base[base.index(":") :]
        path = f"{webhook[0]}/{webhook[1]}/{method}" if webhook else method
        return f"{base}/rest/{path}"

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        encoding: str = "json",
        webhook: tuple[int, str] | None = None,
        scheme: str | None = None,
        timeout: float = 10,
    ) -> requests.Response:
        """``encoding``: "json" body, "form" (PHP keys), "multipart" (PHP keys), or "query" (GET)."""
        params = dict(params or {})
        if webhook is None:
            auth = token if token is not None else self.token
            if auth is not None:
                params["auth"] = auth
        url = self.url(method, webhook=webhook, scheme=scheme)
        if encoding == "json":
            return requests.post(url, json=params, timeout=timeout)
        if encoding == "form":
            return requests.post(url, data=flatten(params), timeout=timeout)
        if encoding == "multipart":
            return requests.post(url, files={k: (None, v) for k, v in flatten(params)}, timeout=timeout)
        if encoding == "query":
            return requests.get(f"{url}?{urlencode(flatten(params))}", timeout=timeout)
        raise ValueError(encoding)

    def result(self, method: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        response = self.call(method, params, **kw)
        body = response.json()
        assert response.status_code == 200 and "error" not in body, (response.status_code, body)
        return body["result"]


def make_sandbox(clock: ManualClock | None = None, **kw: Any) -> tuple[Sandbox, AppInbox]:
    sb = Sandbox(clock=clock or ManualClock(), **kw)
    sb.register_app(
        CLIENT_ID,
        CLIENT_SECRET,
        scopes=["telephony", "crm", "user_basic", "placement"],
        app_url=APP_URL,
        installer_url=INSTALLER_URL,
        install_event_url=INSTALL_EVENT_URL,
    )
    inbox = AppInbox()
    sb.event_transport = inbox
    return sb, inbox


def installer_token(inbox: AppInbox) -> str:
    """AUTH_ID of the latest installer/app page POST."""
    return inbox.pages()[-1].flat["AUTH_ID"]


@pytest.fixture
def b24_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def b24_sandbox_and_inbox(b24_clock: ManualClock) -> Iterator[tuple[Sandbox, AppInbox]]:
    sb, inbox = make_sandbox(b24_clock)
    with sb.activate():
        yield sb, inbox
    assert not sb.internal_errors, "the sandbox itself failed:\n" + "\n".join(sb.internal_errors)


@pytest.fixture
def b24_sandbox(b24_sandbox_and_inbox: tuple[Sandbox, AppInbox]) -> Sandbox:
    return b24_sandbox_and_inbox[0]


@pytest.fixture
def b24_inbox(b24_sandbox_and_inbox: tuple[Sandbox, AppInbox]) -> AppInbox:
    return b24_sandbox_and_inbox[1]


@pytest.fixture
def b24_installed(b24_sandbox: Sandbox, b24_inbox: AppInbox) -> Portal:
    """acme.bitrix24.test with the default staff and the app fully installed (the installer page and the
    install events stay in ``b24_inbox``: ``b24_rest`` reads the admin's token from it)."""
    portal = b24_sandbox.create_portal("acme.bitrix24.test")
    b24_sandbox.install(portal)
    return portal


@pytest.fixture
def b24_rest(b24_sandbox: Sandbox, b24_installed: Portal, b24_inbox: AppInbox) -> RestCaller:
    """REST caller with the installing admin's token (AUTH_ID from the installer page)."""
    return RestCaller(b24_sandbox, b24_installed, installer_token(b24_inbox))


__all__ = [
    "AppInbox",
    "Received",
    "RestCaller",
    "b24_clock",
    "b24_inbox",
    "b24_installed",
    "b24_rest",
    "b24_sandbox",
    "b24_sandbox_and_inbox",
    "installer_token",
    "make_sandbox",
]
