"""Shared harness for the sandbox telephony/CRM tests (no tests of its own).

Everything goes through the public Sandbox API over HTTP, as the product will use it: a portal with the
default staff (1 admin ext 100, 2 Boris ext 101, 3 Clara ext 102, 4 Dmitry inactive ext 103, 5 Elena without
extension), the app installed, and requests routed in-process by ``responses``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import requests
import responses

from b24sandbox import telephony
from b24sandbox.clock import ManualClock
from b24sandbox.phparray import flatten, parse_query
from b24sandbox.sandbox import Sandbox

START = 1_773_130_000.0  # 2026-03-10 08:06:40 UTC
CLIENT_ID = "local.telephony-tests"
APP_URL = "https://app.example.test/b24/app/"
EVENT_URL = "https://app.example.test/b24/events/"
DOMAIN = "acme.bitrix24.test"
CLIENT_PHONE = "+74951112233"


class Harness:
    def __init__(
        self, sb: Sandbox, rsps: responses.RequestsMock, portal: Any, received: list[tuple[str, bytes]]
    ):
        self.sb = sb
        self.rsps = rsps
        self.portal = portal
        self.received = received
        self.token = sb.issue_token(portal, 1)["access_token"]

    @classmethod
    @contextlib.contextmanager
    def start(cls, *, seed: str | None = None, domain: str = DOMAIN) -> Iterator[Harness]:
        sb = Sandbox(clock=ManualClock(START), seed=11)
        sb.register_app(
            CLIENT_ID, "app-secret", scopes=["telephony", "crm", "user_basic", "placement"], app_url=APP_URL
        )
        received: list[tuple[str, bytes]] = []

        def transport(url: str, body: bytes, headers: dict[str, str]) -> int:
            received.append((url, body))
            return 200

        sb.event_transport = transport
        sb.page_transport = lambda url, body, headers: 200
        portal = sb.create_portal(domain, seed=seed)
        with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps, sb.activate(rsps):
            sb.install(portal)
            yield cls(sb, rsps, portal, received)

    # --- HTTP ---------------------------------------------------------------------------------------------
    def rest(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        form: bool = False,
        webhook: tuple[int, str] | None = None,
        domain: str | None = None,
    ) -> tuple[int, Any]:
        params = dict(params or {})
        domain = domain or self.portal.domain
        if webhook is not None:
            url = f"https://{domain}/rest/{webhook[0]}/{webhook[1]}/{method}.json"
        else:
            url = f"https://{domain}/rest/{method}.json"
            params["auth"] = token or self.token
        if form:
            response = requests.post(
                url,
                data=urlencode(flatten(params)),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                timeout=5,
            )
        else:
            response = requests.post(url, json=params, timeout=5)
        return response.status_code, response.json()

    def ok(self, method: str, params: dict[str, Any] | None = None, **kw: Any) -> Any:
        status, body = self.rest(method, params, **kw)
        assert status == 200 and "error" not in body, (status, body)
        return body["result"]

    def fail(self, method: str, params: dict[str, Any] | None = None, **kw: Any) -> tuple[int, str, str]:
        status, body = self.rest(method, params, **kw)
        assert "error" in body, (status, body)
        return status, body["error"], body["error_description"]

    # --- telephony shortcuts ------------------------------------------------------------------------------
    def register(self, **params: Any) -> dict[str, Any]:
        return self.ok(
            "telephony.externalcall.register",
            {"USER_ID": 2, "PHONE_NUMBER": CLIENT_PHONE, "TYPE": 2, **params},
        )

    def finish(self, call_id: str, **params: Any) -> dict[str, Any]:
        return self.ok(
            "telephony.externalcall.finish", {"CALL_ID": call_id, "USER_ID": 2, "DURATION": 10, **params}
        )

    def finished_call(self, **register: Any) -> str:
        call_id = self.register(**register)["CALL_ID"]
        self.finish(call_id)
        return call_id

    @property
    def state(self) -> telephony.TelephonyState:
        return self.portal.telephony

    def snap(self) -> dict[str, Any]:
        return telephony.snapshot(self.portal)

    def call(self, call_id: str) -> dict[str, Any]:
        return next(c for c in self.snap()["calls"] if c["call_id"] == call_id)

    def second_portal(self, domain: str = "beta.bitrix24.test") -> tuple[Any, str]:
        """Another tenant in the same sandbox with the same app installed, and an admin token for it."""
        portal = self.sb.create_portal(domain)
        self.sb.install(portal)
        return portal, self.sb.issue_token(portal, 1)["access_token"]

    def advance(self, seconds: float) -> None:
        self.sb.clock.advance(seconds)

    # --- events -------------------------------------------------------------------------------------------
    def bind(self, *events: str) -> None:
        for event in events:
            self.ok("event.bind", {"event": event, "handler": EVENT_URL})

    def events(self, name: str) -> list[dict[str, Any]]:
        self.sb.flush_events()
        parsed = [parse_query(body.decode()) for url, body in self.received if url == EVENT_URL]
        return [p for p in parsed if p.get("event") == name]
