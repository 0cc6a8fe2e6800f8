"""The Sandbox: several Bitrix24 portals, one OAuth server and one registered app, behind one request core.

    sb = Sandbox(clock=ManualClock())
    sb.register_app("local.app", "secret", scopes=["telephony", "crm", "user_basic", "placement"],
                    app_url="https://app.test/b24/app/", installer_url="https://app.test/b24/install/")
    portal = sb.create_portal("acme.bitrix24.test")
    with sb.activate():           # requests to sandbox hosts go to sb.handle(); anything else passes through
        sb.install(portal)
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

from b24sandbox import install, methods, oauth, observe, rest
from b24sandbox import limits as limits_mod
from b24sandbox.addressing import Addressing
from b24sandbox.clock import ManualClock, RealClock
from b24sandbox.events import AUTH_VARIANTS, Outgoing, auth_block, deliver, event_body
from b24sandbox.faults import Faults
from b24sandbox.http import Request, Response, html_response, json_response, redirect
from b24sandbox.state import PLAN_LIMITS, Limits, Portal, RegisteredApp, User

DEFAULT_OAUTH_HOST = "oauth.sandbox.test"


def _default_transport(url: str, body: bytes, headers: dict[str, str]) -> Any:
    import requests

    return requests.post(url, data=body, headers=headers, timeout=10, allow_redirects=False)


class Sandbox:
    def __init__(
        self,
        clock: ManualClock | RealClock | None = None,
        allow_http: bool = False,
        *,
        oauth_host: str = DEFAULT_OAUTH_HOST,
        limits: bool = True,
        seed: int | None = None,
    ) -> None:
        self.clock: ManualClock | RealClock = clock if clock is not None else RealClock()
        self.allow_http = allow_http
        self.oauth_host = oauth_host
        self.limits_enabled = limits  # default for new portals; per portal via set_limits()
        self.rng_seed = seed
        self.app: RegisteredApp | None = None
        self.portals: dict[str, Portal] = {}  # member_id -> portal
        self._domains: dict[str, Portal] = {}  # current and old domains -> portal
        self.tokens = oauth.TokenService(self)
        self.faults = Faults()
        self.internal_errors: list[str] = []
        self.traffic = observe.Traffic(self.clock)  # what each portal's REST surface saw (benchmarks)

        # OAuth knobs (docs/bitrix24-contract.md §1.9, §1.10, §11)
        self.access_lifetime = 3600.0
        self.refresh_lifetime = 180 * 86400.0
        self.code_lifetime = 30.0
        self.kill_access_on_refresh = False
        self.wrong_client_style = "invalid_client"  # or "wrong_client" (HTTP 200)
        self.invalid_client_status = 401
        self.portal_deleted_status = 500

        # REST knobs
        self.default_method_duration = 0.02  # operating seconds of a method limits.METHOD_COSTS does not list
        # Answer late by this fraction of the operating time a request counted (0: counted, never slept),
        # for a benchmark that wants the portal's processing time on the wire too.
        self.sleep_operating = 0.0
        self.method_durations: dict[str, float] = {}
        self.duplicate_bind_style = "already_exists"  # or "unable" (§4.1, §11.11)
        self.reject_local_handlers = False  # Bitrix24 refuses localhost handlers; the demo needs them

        # event knobs (§4)
        self.event_transport: Callable[[str, bytes, dict[str, str]], Any] = _default_transport
        self.page_transport: Callable[[str, bytes, dict[str, str]], Any] | None = None  # iframe POSTs
        self.event_auth = "user"
        self.event_refresh_token = False  # telephony examples carry it; docs say only ONAPPINSTALL
        self.event_delay = 0.0
        self.hold_events = False
        self.iframe_style = "split"  # or "legacy": everything in the POST body, fewer fields (§1.3, §11.6)

        self._lock = threading.RLock()
        self._local = threading.local()
        self._outbox: list[Outgoing] = []
        self._outbox_lock = threading.Lock()
        self._server: Any = None
        self._worker: Any = None
        self.clock.on_advance(lambda _now: self._kick())

    # ------------------------------------------------------------------ setup
    def register_app(
        self,
        client_id: str = "local.sandbox-app",
        client_secret: str = "sandbox-client-secret",
        *,
        scopes: list[str] | tuple[str, ...] = ("telephony", "crm", "user_basic", "placement"),
        app_url: str,
        installer_url: str | None = None,
        install_event_url: str | None = None,
        redirect_uri: str | None = None,
        version: int = 1,
        status: str = "F",
    ) -> RegisteredApp:
        self.app = RegisteredApp(
            client_id=client_id,
            client_secret=client_secret,
            scopes=tuple(scopes),
            app_url=app_url,
            installer_url=installer_url,
            install_event_url=install_event_url,
            redirect_uri=redirect_uri,
            version=version,
            status=status,
        )
        return self.app

    @property
    def apps(self) -> dict[str, RegisteredApp]:
        """Registered apps by client_id (one app per sandbox)."""
        return {self.app.client_id: self.app} if self.app else {}

    def create_portal(
        self,
        domain: str,
        plan: str = "standard",
        seed: str | None = None,
        *,
        member_id: str | None = None,
        users: list[User] | None = None,
        country: str = "RU",
        lang: str = "en",
    ) -> Portal:
        """A new portal. ``users`` replaces the default staff; ``seed="demo"`` adds ~60 users and CRM data.

        Default staff (no seed): 1 admin (ext 100), 2 Boris (ext 101), 3 Clara (ext 102), 4 Dmitry (inactive,
        ext 103), 5 Elena (no extension).
        """
        if plan not in PLAN_LIMITS:
            raise ValueError(f"plan must be one of {sorted(PLAN_LIMITS)}")
        domain = domain.lower()
        if domain in self._domains:
            raise ValueError(f"{domain} already exists")
        from b24sandbox import seed as seeding

        capacity, drain = PLAN_LIMITS[plan]
        with self._locked():
            portal = Portal(
                member_id=member_id or secrets.token_hex(16),
                domain=domain,
                plan=plan,
                limits=Limits(enabled=self.limits_enabled, capacity=capacity, drain=drain, updated_at=self.clock.now()),
                country=country,
                lang=lang,
            )
            if portal.member_id in self.portals:
                raise ValueError(f"member_id {portal.member_id} already exists")
            if users is not None:
                portal.users = {u.id: u for u in users}
            elif seed == "demo":
                seeding.seed_demo_portal(portal, self.rng(domain))
            else:
                seeding.seed_default_staff(portal)
            self.portals[portal.member_id] = portal
            self._domains[domain] = portal
        return portal

    def rng(self, salt: str = "") -> Any:
        import random

        return random.Random(f"{self.rng_seed}:{salt}" if self.rng_seed is not None else None)

    def portal(self, key: str | Portal) -> Portal:
        """Look a portal up by member_id or (current or old) domain."""
        if isinstance(key, Portal):
            return key
        found = self.portals.get(key) or self._domains.get(key.lower())
        if found is None:
            raise KeyError(f"no sandbox portal {key!r}")
        return found

    def add_webhook(self, portal: Portal, user_id: int, scopes: list[str] | tuple[str, ...]) -> str:
        """An inbound webhook; call it at ``/rest/{user_id}/{code}/{method}``. Returns the code."""
        code = secrets.token_hex(8)
        portal.webhooks[code] = (int(user_id), tuple(scopes))
        return code

    def issue_token(self, portal: Portal, user_id: int | None = None) -> dict[str, Any]:
        """A token pair for a user, shaped like the OAuth token response (test convenience)."""
        with self._locked():
            user_id = user_id if user_id is not None else portal.admin().id
            token = self.tokens.issue(portal, user_id)
            return self.tokens.token_response(token, self.addressing())

    # ------------------------------------------------------------------ knobs
    def set_limits(
        self,
        portal: Portal,
        capacity: float | None = None,
        drain: float | None = None,
        *,
        enabled: bool | None = None,
    ) -> None:
        limits = portal.limits
        if capacity is not None:
            limits.capacity = float(capacity)
        if drain is not None:
            limits.drain = float(drain)
        if enabled is not None:
            limits.enabled = enabled
        limits.level = min(limits.level, limits.capacity)

    def set_operating(self, portal: Portal, *, enabled: bool | None = None, budget: float | None = None) -> None:
        if enabled is not None:
            portal.limits.operating_enabled = enabled
        if budget is not None:
            portal.limits.operating_budget = float(budget)

    def set_method_duration(self, method: str, seconds: float, portal: Portal | None = None) -> None:
        """A flat operating time per call of ``method`` (§3.2), for this portal or for every portal, in place
        of the modelled one (``limits.METHOD_COSTS``)."""
        target = portal.limits.durations if portal is not None else self.method_durations
        target[rest.normalize_method(method)] = float(seconds)

    def method_duration(self, portal: Portal, method: str, result: Any = None) -> float:
        """Operating seconds one call of ``method`` costs: a duration set for the portal, else one set for
        every portal, else the model (which for register depends on the CRM entities it created)."""
        if method in portal.limits.durations:
            return portal.limits.durations[method]
        if method in self.method_durations:
            return self.method_durations[method]
        return limits_mod.method_cost(method, result, self.default_method_duration)

    def operating(self, portal: Portal, method: str, principal: str = "app") -> float:
        used, _ = limits_mod.operating(portal.limits, f"{principal}|{rest.normalize_method(method)}", self.clock.now())
        return used

    # ------------------------------------------------------------------ addressing
    def addressing(self, request: Request | None = None) -> Addressing:
        """Server mode when the request came through the server (or no request and a server runs)."""
        if request is not None:
            if self._is_virtual_host(request.host):
                return Addressing(None, self.oauth_host, scheme=request.scheme or "https")
            return Addressing(f"{request.scheme}://{request.netloc}", self.oauth_host)
        if self._server is not None:
            return Addressing(self._server.base_url, self.oauth_host)
        return Addressing(None, self.oauth_host)

    def _is_virtual_host(self, host: str) -> bool:
        return host == self.oauth_host or host in self._domains

    def owns_url(self, url: str) -> bool:
        """In-process: is this URL one of the sandbox's virtual hosts?"""
        from urllib.parse import urlsplit

        return self._is_virtual_host((urlsplit(url).hostname or "").lower())

    def portal_url(self, portal: Portal) -> str:
        return self.addressing().portal_base(portal.domain)

    @property
    def oauth_url(self) -> str:
        return self.addressing().oauth_base

    # ------------------------------------------------------------------ the request core
    def handle(self, method: str, url: str, headers: dict[str, str] | None, body: bytes | None) -> tuple[int, dict[str, str], bytes]:
        """The one request core: (status, headers, body). Injected delays are slept on the sandbox clock;
        a dropped connection raises ConnectionError."""
        response = self.handle_request(Request(method.upper(), url, dict(headers or {}), body or b""))
        if response.drop:
            raise ConnectionError("connection dropped by a sandbox fault")
        if response.delay:
            self.clock.sleep(response.delay)
        return response.status, response.headers, response.body

    def handle_request(self, request: Request) -> Response:
        try:
            if not self._is_virtual_host(request.host) and not request.path.startswith(("/oauth/", "/portal/")):
                from b24sandbox import demo

                # the demo page runs hooks that POST to the app, which calls back in: never under the lock
                return demo.route(self, request)
            with self._locked():
                return self._route(request)
        except Exception as exc:
            import traceback

            self.internal_errors.append(f"{request.method} {request.url}: {exc!r}\n{traceback.format_exc()}")
            return json_response(500, {"error": "INTERNAL_SERVER_ERROR", "error_description": "Internal server error"})

    def _route(self, request: Request) -> Response:
        addr = self.addressing(request)
        if self._is_virtual_host(request.host):
            if request.host == self.oauth_host:
                return self._route_oauth(request, request.path, addr)
            portal = self._domains[request.host]
            return self._route_portal(request, portal, request.host, request.path, addr)
        path = request.path
        if path.startswith("/oauth/"):
            return self._route_oauth(request, path[len("/oauth") :], addr)
        domain, _, rest_of = path[len("/portal/") :].partition("/")
        portal = self._domains.get(unquote(domain).lower())
        if portal is None:
            return html_response(404, "<h1>Portal not found</h1>")
        return self._route_portal(request, portal, unquote(domain).lower(), "/" + rest_of, addr)

    def _route_oauth(self, request: Request, path: str, addr: Addressing) -> Response:
        fault = self.faults.take(None, "oauth.token" if "token" in path else "oauth.app.info")
        if fault is not None and fault.kind in ("error500", "overload", "drop"):
            if fault.kind == "drop":
                return Response(0, drop=True)
            return json_response(500 if fault.kind == "error500" else 503, {"error": "server_error"})
        if path.rstrip("/") in ("/oauth/token", "/token"):
            response = oauth.handle_token(self, request, addr)
        elif path.rstrip("/") in ("/rest/app.info", "/rest/app.info.json"):
            response = oauth.handle_app_info(self, request, addr)
        else:
            response = html_response(404, "<h1>Not found</h1>")
        if fault is not None and fault.kind == "slow":
            response.delay = fault.delay
        return response

    def _route_portal(self, request: Request, portal: Portal, domain: str, path: str, addr: Addressing) -> Response:
        if domain != portal.domain:  # §2.8: the old address answers 302 to the new host, for every path
            target = addr.portal_base(portal.domain) + path + (f"?{request.query}" if request.query else "")
            return redirect(target)
        base_url = addr.portal_base(portal.domain)
        if path.startswith("/rest/"):
            return rest.handle_rest(self, portal, request, base_url, path[len("/rest/") :])
        if path.rstrip("/") == "/oauth/authorize":
            return oauth.handle_authorize(self, portal, request, addr)
        return html_response(404, "<h1>Not found</h1>")

    def time_block(self, portal: Portal, start: float, duration: float) -> dict[str, Any]:
        """The ``time`` member of the envelope (§2.2); operating fields are added by the dispatcher."""
        zone = ZoneInfo(portal.time_zone)
        finish = start + duration
        return {
            "start": round(start, 6),
            "finish": round(finish, 6),
            "duration": round(duration, 6),
            "processing": round(duration * 0.6, 6),
            "date_start": datetime.fromtimestamp(start, zone).isoformat(timespec="seconds"),
            "date_finish": datetime.fromtimestamp(finish, zone).isoformat(timespec="seconds"),
        }

    # ------------------------------------------------------------------ locking and the event outbox
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """State changes happen under one lock; events queued meanwhile are delivered after the outermost
        section releases it, so an app handling an event can call back into the sandbox from any thread."""
        self._lock.acquire()
        self._local.depth = getattr(self._local, "depth", 0) + 1
        try:
            yield
        finally:
            self._local.depth -= 1
            self._lock.release()
            if self._local.depth == 0:
                self._kick()

    def _kick(self) -> None:
        if getattr(self._local, "depth", 0) > 0:
            return
        if self._worker is not None:
            self._worker.wake()
            return
        self.deliver_due()

    def enqueue(self, item: Outgoing) -> None:
        with self._outbox_lock:
            self._outbox.append(item)
        if self.event_delay > 0 and not self.clock.manual and self._worker is None:
            timer = threading.Timer(self.event_delay, self._kick)
            timer.daemon = True
            timer.start()

    def deliver_due(self, *, everything: bool = False) -> int:
        """Deliver queued events whose time has come (all of them with ``everything``); returns the count."""
        delivered = 0
        while True:
            now = self.clock.now()
            with self._outbox_lock:
                ready = [i for i in self._outbox if everything or (not self.hold_events and i.due <= now)]
                if not ready:
                    return delivered
                item = ready[0]
                self._outbox.remove(item)
            deliver(self, item)
            delivered += 1

    def flush_events(self) -> int:
        """Deliver every queued event now, held or delayed."""
        return self.deliver_due(everything=True)

    @property
    def pending_events(self) -> list[Outgoing]:
        with self._outbox_lock:
            return list(self._outbox)

    def fire_event(
        self,
        portal: Portal,
        event: str,
        data: dict[str, Any],
        *,
        user_id: int | None = None,
        force: bool = False,
        include_refresh: bool | None = None,
    ) -> int:
        """Queue ``event`` to every binding of it on ``portal``; returns how many were queued.

        Before installFinish nothing is delivered (§1.4): each suppressed event is recorded as a delivery with
        an error, so tests can see it. ``force`` is for ONAPPINSTALL/ONAPPUNINSTALL/ONAPPUPDATE.
        """
        from b24sandbox.state import Delivery

        event = event.upper()
        with self._locked():
            bindings = [b for b in portal.event_bindings if b.event == event]
            if not bindings or portal.app is None:
                return 0
            now = self.clock.now()
            if not portal.app.installed and not force:
                for binding in bindings:
                    portal.record_delivery(
                        Delivery(now, binding.handler, event, None, "suppressed: installation not finished", b"")
                    )
                return 0
            addr = self.addressing()
            variant = portal.event_auth or self.event_auth
            if variant not in AUTH_VARIANTS:
                raise ValueError(f"event_auth must be one of {AUTH_VARIANTS}")
            refresh = self.event_refresh_token if include_refresh is None else include_refresh
            for binding in bindings:
                auth_user = binding.auth_type or user_id
                auth = auth_block(self, portal, addr, variant=variant, user_id=auth_user, include_refresh=refresh)
                body = event_body(event, data, auth, now, binding.id)
                self.enqueue(Outgoing(portal.member_id, binding.handler, event, body, now + self.event_delay))
            return len(bindings)

    def deliveries(self, portal: Portal, event: str | None = None) -> list[Any]:
        return [d for d in portal.deliveries if event is None or d.event == event.upper()]

    # ------------------------------------------------------------------ test hooks (install flows)
    def install_ui(self, portal: Portal, user_id: int | None = None) -> Any:
        return install.install_ui(self, portal, user_id)

    def send_onappinstall(self, portal: Portal) -> Any:
        return install.send_onappinstall(self, portal)

    def install_finish(self, portal: Portal) -> None:
        install.install_finish(self, portal)

    def install(self, portal: Portal, user_id: int | None = None, *, finish: bool = True, event: bool = True) -> Any:
        return install.install(self, portal, user_id, finish=finish, event=event)

    def uninstall(self, portal: Portal, clean: bool = False) -> None:
        install.uninstall(self, portal, clean=clean)

    def reinstall(self, portal: Portal, user_id: int | None = None, *, clean: bool = False, finish: bool = True) -> Any:
        return install.reinstall(self, portal, user_id, clean=clean, finish=finish)

    def update_app(self, portal: Portal, version: int | None = None, *, new_application_token: bool = True) -> None:
        install.update_app(self, portal, version, new_application_token=new_application_token)

    def rename_portal(self, portal: Portal, new_domain: str) -> None:
        new_domain = new_domain.lower()
        with self._locked():
            if new_domain in self._domains and self._domains[new_domain] is not portal:
                raise ValueError(f"{new_domain} is taken")
            portal.old_domains.append(portal.domain)
            portal.domain = new_domain
            self._domains[new_domain] = portal

    def delete_portal(self, portal: Portal) -> None:
        with self._locked():
            portal.deleted = True

    def open_app(
        self,
        portal: Portal,
        user_id: int | None = None,
        *,
        placement: str = "DEFAULT",
        options: dict[str, Any] | None = None,
        handler: str | None = None,
    ) -> Any:
        return install.open_app(self, portal, user_id, placement=placement, options=options, handler=handler)

    # ------------------------------------------------------------------ test hooks (telephony scenarios)
    def click_to_call(self, portal: Portal, user_id: int, phone: str, line: str | None = None, crm: Any = None, **kw: Any) -> str:
        from b24sandbox import scenarios

        return scenarios.click_to_call(self, portal, user_id, phone, line=line, crm=crm, **kw)

    def submit_callback_form(
        self, portal: Portal, phone: str, text: str = "", voice: str = "", line: str | None = None, crm: Any = None
    ) -> dict[str, Any]:
        from b24sandbox import scenarios

        return scenarios.submit_callback_form(self, portal, phone, text=text, voice=voice, line=line, crm=crm)

    # ------------------------------------------------------------------ outbound HTTP and observation
    def http_get(self, url: str, timeout: float = 30.0) -> tuple[int, bytes]:
        """The portal fetching a URL (RECORD_URL): (status, body); status 0 when the connection failed."""
        import requests

        try:
            response = requests.get(url, timeout=timeout)
        except requests.RequestException:
            return 0, b""
        return response.status_code, response.content

    def snapshot(self, portal: Portal) -> dict[str, Any]:
        from b24sandbox import observe

        return observe.snapshot(self, portal)

    # ------------------------------------------------------------------ modes
    def activate(self, rsps: Any = None) -> Any:
        """In-process mode: a context manager routing every sandbox host through ``responses`` to this core."""
        from b24sandbox import inprocess

        return inprocess.activate(self, rsps)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> Any:
        """Server mode: a real HTTP server in a thread (plain http, so allow_http is switched on)."""
        from b24sandbox import server

        return server.serve(self, host, port)


# method modules register themselves on import
methods.load()
