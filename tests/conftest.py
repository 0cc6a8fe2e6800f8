"""Fixtures shared by the product tests (portals, calls): the Bitrix24 sandbox wired to our views,
portals installed through the real install flow, and a real Celery worker process.

    def test_something(installed_portal, sandbox):
        installed_portal.portal      # portals.models.Portal (our side)
        installed_portal.b24         # b24sandbox.state.Portal (the Bitrix24 side)
        sandbox.click_to_call(installed_portal.b24, user_id=2, phone="+74951234567")

In-process mode (``sandbox``): every sandbox host is served through ``responses``; events and iframe
POSTs the sandbox sends reach our views through Django's test ``Client``. The sandbox runs on a
``ManualClock``: tokens expire and rate-limit buckets drain only when ``sandbox.clock.advance(s)`` is called.

Server mode (``sandbox_server``, e2e): the sandbox is a real HTTP server on 127.0.0.1 so other
processes (``celery_worker_process``, ``run_portal_processes``) can reach it; settings for the child
processes are exported by ``child_env()``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from benchmarks import harness

ROOT = Path(__file__).resolve().parent.parent
APP_BASE_URL = "https://app.test"
INSTALL_PATH = "/bitrix24/install/"
APP_PATH = "/bitrix24/app/"
EVENTS_PATH = "/bitrix24/events/"


# ------------------------------------------------------------------------------------ the shared cache


@pytest.fixture(scope="session", autouse=True)
def _empty_cache_at_start() -> None:
    """The shared cache (Redis, or files under var/) outlives a test run, while the test database and its ids
    start afresh: a key of an earlier run's portal 1 (a pump's timer, an epoch) would belong to this run's
    portal 1. Every run starts with an empty cache, as CI's fresh machine does."""
    from django.core.cache import cache

    cache.clear()


# ------------------------------------------------------------------------------------ catalogues


@pytest.fixture(scope="session", autouse=True)
def _compiled_catalogues() -> None:
    """Pages and API answers are tested in Russian too: compile a catalogue newer than its .mo
    (scripts/test compiles them all first; this covers a bare ``pytest`` after editing a .po)."""
    compiled = False
    for po in (ROOT / "locale").glob("*/LC_MESSAGES/*.po"):
        mo = po.with_suffix(".mo")
        if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
            subprocess.run(["msgfmt", "--check", "-o", str(mo), str(po)], check=True)
            compiled = True
    if compiled:
        # Catalogues loaded before (test database setup) were read from the old files: Django and
        # Python's gettext module both keep them.
        import gettext

        from django.utils.translation import trans_real

        gettext._translations.clear()
        trans_real._translations.clear()
        trans_real._default = None


# ------------------------------------------------------------------------------------ transports


class DjangoTransport:
    """How the sandbox's outbound POSTs (events, installer/app pages) reach our views in-process."""

    def __init__(self, app_base_url: str = APP_BASE_URL) -> None:
        from django.test import Client

        self.client = Client()
        self.app_base_url = app_base_url.rstrip("/")
        self.sent: list[tuple[str, int]] = []

    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> Any:
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" != self.app_base_url:
            raise AssertionError(f"the sandbox posted to {url}, which is not this app ({self.app_base_url})")
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        response = self.client.generic(
            "POST",
            path,
            data=body,
            content_type=headers.get("Content-Type", "application/x-www-form-urlencoded"),
            secure=parts.scheme == "https",
            headers={"host": parts.netloc, "user-agent": headers.get("User-Agent", "Bitrix24")},
        )
        self.sent.append((url, response.status_code))
        return response


def _register_app(sb: Any, settings: Any, app_base_url: str) -> None:
    sb.register_app(
        settings.BITRIX24_CLIENT_ID,
        settings.BITRIX24_CLIENT_SECRET,
        scopes=list(settings.BITRIX24_APP_SCOPES),
        app_url=app_base_url + APP_PATH,
        installer_url=app_base_url + INSTALL_PATH,
        install_event_url=app_base_url + EVENTS_PATH,
        redirect_uri=app_base_url + "/bitrix24/oauth/callback/",
    )


# ------------------------------------------------------------------------------------ sandbox


@pytest.fixture
def sandbox(settings) -> Iterator[Any]:
    """An in-process Bitrix24 (b24sandbox.Sandbox, ManualClock) with our app registered and active."""
    from b24sandbox.clock import ManualClock
    from b24sandbox.sandbox import Sandbox

    sb = Sandbox(clock=ManualClock())
    settings.APP_BASE_URL = APP_BASE_URL
    settings.BITRIX24_OAUTH_SERVER = f"https://{sb.oauth_host}"
    settings.BITRIX24_OAUTH_HOSTS = [*settings.BITRIX24_OAUTH_HOSTS, sb.oauth_host]
    settings.BITRIX24_ALLOW_HTTP = False
    settings.BITRIX24_CLOUD_ZONES = [*settings.BITRIX24_CLOUD_ZONES, "bitrix24.test"]  # the sandbox's portals
    _register_app(sb, settings, APP_BASE_URL)
    sb.event_transport = DjangoTransport()
    with sb.activate():
        yield sb
    assert not sb.internal_errors, "the sandbox itself failed:\n" + "\n".join(sb.internal_errors)


@pytest.fixture
def start_sandbox_server(settings, transactional_db) -> Iterator[Callable[..., Any]]:
    """Factory: ``start_sandbox_server(clock=None)`` -> the sandbox as a real HTTP server on 127.0.0.1.

    ``clock`` defaults to a ManualClock; pass ``RealClock()`` when the sandbox's rate-limit bucket must
    drain in real time. Our settings are switched to it (http allowed, OAuth server on 127.0.0.1);
    ``child_env()`` carries them to subprocesses. Events still reach our views through the test Client.
    """
    from b24sandbox.clock import ManualClock
    from b24sandbox.sandbox import Sandbox

    started: list[Any] = []

    def start(clock: Any = None) -> Any:
        sb = Sandbox(clock=clock or ManualClock(), allow_http=True)
        server = sb.serve(host="127.0.0.1", port=0)
        started.append(sb)
        settings.APP_BASE_URL = APP_BASE_URL
        settings.BITRIX24_ALLOW_HTTP = True
        settings.BITRIX24_OAUTH_SERVER = f"{server.base_url}/oauth"
        settings.BITRIX24_OAUTH_HOSTS = [*settings.BITRIX24_OAUTH_HOSTS, "127.0.0.1"]
        settings.BITRIX24_ONPREMISE_HOSTS = [*settings.BITRIX24_ONPREMISE_HOSTS, "127.0.0.1"]  # path-based portals
        _register_app(sb, settings, APP_BASE_URL)
        sb.event_transport = DjangoTransport()
        sb.server = server
        return sb

    yield start
    for sb in started:
        with contextlib.suppress(Exception):
            sb.server.stop()
    errors = [e for sb in started for e in sb.internal_errors]
    assert not errors, "the sandbox itself failed:\n" + "\n".join(errors)


@pytest.fixture
def sandbox_server(start_sandbox_server) -> Any:
    """The sandbox as a real HTTP server (ManualClock); ``sandbox_server.server.base_url``."""
    return start_sandbox_server()


# ------------------------------------------------------------------------------------ installed portals


@dataclass
class InstalledPortal:
    portal: Any  # portals.models.Portal
    b24: Any  # b24sandbox.state.Portal
    install_response: Any

    def refresh(self) -> InstalledPortal:
        self.portal.refresh_from_db()
        return self


def install_through_ui(sb: Any, b24: Any, *, user_id: int | None = None, finish: bool = True) -> InstalledPortal:
    """The Marketplace flow: the admin opens the installer page, our page binds events, installFinish."""
    from portals.models import Portal

    response = sb.install_ui(b24, user_id)
    assert response.status_code == 200, response.content.decode(errors="replace")[:2000]
    if finish:
        sb.install_finish(b24)
    return InstalledPortal(Portal.objects.get(member_id=b24.member_id), b24, response)


@pytest.fixture
def install_portal(sandbox, db) -> Callable[..., InstalledPortal]:
    """Factory: ``install_portal(domain="acme.bitrix24.test", plan="standard", seed=None)``."""
    counter = iter(range(1, 1000))

    def install(domain: str | None = None, plan: str = "standard", seed: str | None = None, **kw: Any) -> InstalledPortal:
        b24 = sandbox.create_portal(domain or f"portal{next(counter)}.bitrix24.test", plan=plan, seed=seed, **kw)
        return install_through_ui(sandbox, b24)

    return install


@pytest.fixture
def installed_portal(install_portal) -> InstalledPortal:
    """One portal installed through the real install flow (installer page + installFinish)."""
    return install_portal("acme.bitrix24.test")


# ------------------------------------------------------------------------------------ call state machine


@pytest.fixture(autouse=True)
def _calls_finish_without_settle_window(settings):
    """In production a finish waits CALLS_FINISH_SETTLE_SECONDS after call.ended for late events; tests
    deliver everything at once (eager tasks would otherwise spin until the window passes). Tests of the
    window itself set it back."""
    settings.CALLS_FINISH_SETTLE_SECONDS = 0


@pytest.fixture(autouse=True)
def _originate_to_the_simulator(settings):
    """The PBX simulator answers originate commands on 127.0.0.1 over http: allowed in tests (the guard's
    own tests switch it back off)."""
    settings.ORIGINATE_ALLOW_PRIVATE_HOSTS = True
    settings.ORIGINATE_ALLOW_HTTP = True


@pytest.fixture(autouse=True)
def _verification_limits_out_of_the_way(settings):
    """Every test posts from 127.0.0.1 and the limiters' counters live in the shared cache: the limits
    would leak from one test into the next. Tests of the limits set them (and their own addresses)."""
    settings.BITRIX24_VERIFY_LIMIT_PER_SOURCE = 1_000_000
    settings.BITRIX24_VERIFY_LIMIT_PER_PORTAL = 1_000_000
    settings.BITRIX24_CALLBACKS_PER_PORTAL_PER_MINUTE = 1_000_000
    settings.BITRIX24_CALLBACKS_PER_NUMBER_PER_HOUR = 1_000_000
    settings.BITRIX24_CLICK_TO_CALLS_PER_USER_PER_MINUTE = 1_000_000


# ------------------------------------------------------------------------------------ helpers


@pytest.fixture
def post_event(client) -> Callable[[bytes | str | dict], Any]:
    """POST a raw (or PHP-array-encoded dict) Bitrix24 event body to /bitrix24/events/."""
    from b24sandbox.phparray import http_build_query

    def post(body: bytes | str | dict) -> Any:
        if isinstance(body, dict):
            body = http_build_query(body)
        if isinstance(body, str):
            body = body.encode()
        return client.generic("POST", EVENTS_PATH, data=body, content_type="application/x-www-form-urlencoded",
                              secure=True, headers={"host": "app.test"})

    return post


@pytest.fixture
def run_tasks_inline(django_capture_on_commit_callbacks):
    """Context manager: tasks enqueued with delay_on_commit inside it run right here on commit
    (Celery eager mode for this block only; the real worker is exercised by the e2e tests)."""
    from telephony_app.celery import app

    @contextlib.contextmanager
    def inline() -> Iterator[list]:
        previous = app.conf.task_always_eager, app.conf.task_eager_propagates
        app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
        try:
            with django_capture_on_commit_callbacks(execute=True) as callbacks:
                yield callbacks
        finally:
            app.conf.task_always_eager, app.conf.task_eager_propagates = previous

    return inline


# ------------------------------------------------------------------------------------ child processes


def _database_url() -> str:
    """A URL for the database this test run is using (the test database, not the dev one)."""
    from django.db import connection

    s = connection.settings_dict
    if s["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{Path(s['NAME']).resolve()}"
    user = s.get("USER") or ""
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = s.get("HOST") or "127.0.0.1"
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{s['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a subprocess that must behave like this test process: same database (the test
    DB), broker, coordination and the Bitrix24 settings the test has overridden."""
    from django.conf import settings

    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="telephony_app.settings",
        DATABASE_URL=_database_url(),
        APP_BASE_URL=settings.APP_BASE_URL,
        BITRIX24_CLIENT_ID=settings.BITRIX24_CLIENT_ID,
        BITRIX24_CLIENT_SECRET=settings.BITRIX24_CLIENT_SECRET,
        BITRIX24_OAUTH_SERVER=settings.BITRIX24_OAUTH_SERVER,
        BITRIX24_OAUTH_HOSTS=",".join(settings.BITRIX24_OAUTH_HOSTS),
        BITRIX24_ALLOW_HTTP="1" if settings.BITRIX24_ALLOW_HTTP else "0",
        TOKEN_ENCRYPTION_KEYS=",".join(settings.TOKEN_ENCRYPTION_KEYS),
        RECORDINGS_ALLOW_PRIVATE_HOSTS="1" if getattr(settings, "RECORDINGS_ALLOW_PRIVATE_HOSTS", False) else "0",
        ORIGINATE_ALLOW_PRIVATE_HOSTS="1" if settings.ORIGINATE_ALLOW_PRIVATE_HOSTS else "0",
        ORIGINATE_ALLOW_HTTP="1" if settings.ORIGINATE_ALLOW_HTTP else "0",
        PYTHONUNBUFFERED="1",
        CELERY_BROKER_NAMESPACE=settings.CELERY_BROKER_NAMESPACE,
        # The test's workers keep the test's priority: they compete with nothing the test waits for.
        CELERY_WORKER_NICE="0",
    )
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


@dataclass
class WorkerProcess:
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _purge_broker() -> None:
    from telephony_app.celery import app

    with contextlib.suppress(Exception):
        app.control.purge()


@pytest.fixture
def celery_worker_process(transactional_db, tmp_path) -> Iterator[WorkerProcess]:
    """A REAL ``celery -A telephony_app worker`` subprocess on this run's test database and broker.

    Request it after any fixture that changes settings (e.g. ``sandbox_server``): the worker gets the
    settings as they are when it starts. Tests using it are e2e: mark them ``@pytest.mark.e2e``.
    """
    _purge_broker()
    log_path = tmp_path / "celery-worker.log"
    try:
        process = harness.start_celery_worker(log_path, child_env(), name=f"test-{uuid.uuid4().hex[:8]}@%h")
    except harness.WorkerDidNotStart as exc:
        pytest.fail(str(exc))
    try:
        yield WorkerProcess(process, log_path)
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the worker alone, a short wait for its warm shutdown, then SIGKILL to its process group."""
    harness.stop_process_group(process)


def wait_until(predicate: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.1, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy (for work done by another process)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def run_python_processes(script: Path, argv_list: list[list[str]], *, barrier_dir: Path | None = None,
                         timeout: float = 180) -> list[dict]:
    """Run ``python script *argv`` once per argv, concurrently, with ``child_env()``. Each prints one JSON
    line as its last output; the parsed lines come back in argv order.

    With ``barrier_dir`` each child gets ``--barrier DIR``: it must create ``DIR/ready-<pid>`` when set
    up and then wait for ``DIR/go``, which appears once every child is ready (a real race, not a
    staggered start).
    """
    env = child_env()
    extra = ["--barrier", str(barrier_dir)] if barrier_dir else []
    procs = [
        subprocess.Popen([sys.executable, str(script), *argv, *extra], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for argv in argv_list
    ]
    try:
        if barrier_dir is not None:
            wait_until(lambda: len(list(barrier_dir.glob("ready-*"))) >= len(procs) or any(p.poll() is not None for p in procs),
                       timeout=60, what="child processes to get ready")
            (barrier_dir / "go").touch()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            lines = [line for line in out.splitlines() if line.startswith("{")]
            if proc.returncode != 0 or not lines:
                raise AssertionError(f"{script.name} {proc.args[2:]} failed ({proc.returncode}):\n{err[-4000:]}")
            results.append(json.loads(lines[-1]))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
