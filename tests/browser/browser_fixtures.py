"""Fixtures and helpers of the browser tests: Playwright driving Debian's chromium (never a downloaded browser).

Imported by name from the test modules; tests/browser/conftest.py brings the fixtures in.

* ``chromium`` / ``chromium_no_third_party_cookies``: one browser per session each.
* ``open_page(browser=..., **context_options)``: a fresh context and page at 1280x720 whose console errors,
  uncaught exceptions and failed requests (of every frame) are collected; the test fails at teardown if
  there were any (``BrowserPage.allow_console(pattern)`` for an error the test provokes on purpose).
* ``frontend_build``: the built pages in ``inportal/static/inportal/``, built with npm if missing or older
  than the sources.

The sandbox, the app's pages and the API run in separate origins on different sites (127.0.0.1 for the
portal page, localhost for the app), so the app's frame is a real third-party context.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# Playwright's sync API runs an event loop in this thread; the Django ORM calls the tests make between
# browser steps are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ROOT = Path(__file__).resolve().parents[2]
FRONTEND = ROOT / "frontend"
BUILD = ROOT / "inportal" / "static" / "inportal"
CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1280, "height": 720}


def _newest_source() -> float:
    paths = [*FRONTEND.joinpath("src").rglob("*"), FRONTEND / "package-lock.json", FRONTEND / "vite.config.js",
             *FRONTEND.joinpath("scripts").rglob("*"), *ROOT.joinpath("locale").rglob("djangojs.po")]
    return max(p.stat().st_mtime for p in paths if p.is_file())


@pytest.fixture(scope="session")
def frontend_build() -> Path:
    """The pages as ``npm run build`` leaves them (scripts/test builds them first; this covers a bare pytest)."""
    bundle = BUILD / "app.js"
    if not bundle.exists() or bundle.stat().st_mtime < _newest_source():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is needed to build the pages (frontend/): install Node 20")
        if not (FRONTEND / "node_modules").is_dir():
            subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=FRONTEND, check=True)
        subprocess.run([npm, "run", "build"], cwd=FRONTEND, check=True)
    assert (BUILD / "app.js").exists() and (BUILD / "app.css").exists()
    return BUILD


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


def _launch(driver: Any, *args: str) -> Any:
    return driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", *args])


@pytest.fixture(scope="session")
def chromium(playwright_driver) -> Iterator[Any]:
    browser = _launch(playwright_driver)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def chromium_no_third_party_cookies(playwright_driver) -> Iterator[Any]:
    """Chromium with third-party cookies blocked, as Chrome does by default in its 3PC phase-out."""
    browser = _launch(playwright_driver, "--test-third-party-cookie-phaseout")
    yield browser
    browser.close()


@dataclass
class BrowserPage:
    page: Any
    context: Any
    problems: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow_console(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def unexpected_problems(self) -> list[str]:
        return [p for p in self.problems if not any(a.search(p) for a in self.allowed)]


@pytest.fixture
def open_page(chromium) -> Iterator[Callable[..., BrowserPage]]:
    opened: list[BrowserPage] = []

    def open_(browser: Any = None, **options: Any) -> BrowserPage:
        context = (browser or chromium).new_context(viewport=VIEWPORT, **options)
        page = context.new_page()
        watched = BrowserPage(page, context)

        def on_console(message: Any) -> None:
            if message.type == "error":
                watched.problems.append(f"console error in {message.location.get('url')}: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: watched.problems.append(f"uncaught exception: {error}"))
        def on_request_failed(request: Any) -> None:
            if "ERR_ABORTED" not in (request.failure or ""):  # cut short by a navigation: not a failure
                watched.problems.append(f"request failed: {request.method} {request.url}: {request.failure}")

        page.on("requestfailed", on_request_failed)
        opened.append(watched)
        return watched

    yield open_
    problems = []
    for watched in opened:
        problems += watched.unexpected_problems()
        watched.context.close()
    assert not problems, "the browser reported problems:\n" + "\n".join(problems)


def wait_until(predicate: Callable[[], Any], *, timeout: float = 30.0, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy (work done by another process)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.2)


def app_frame(page: Any, timeout: float = 15_000) -> Any:
    """The app's frame inside the sandbox's portal page, once it has loaded."""
    page.wait_for_selector("#app-frame", state="attached", timeout=timeout)
    handle = page.query_selector("#app-frame")
    frame = handle.content_frame()
    assert frame is not None
    return frame


# ------------------------------------------------------------------------------------ the app in the portal page


@dataclass
class AppView:
    """The sandbox's portal page with the app framed in it."""

    watched: BrowserPage
    stack: AppStack

    @property
    def page(self) -> Any:
        return self.watched.page

    @property
    def frame(self) -> Any:
        return app_frame(self.page)

    def wait_ready(self, selector: str = "#app-root") -> Any:
        frame = self.frame
        frame.wait_for_selector(selector, timeout=20_000)
        return frame

    def open_tab(self, name: str) -> Any:
        frame = self.frame
        frame.click(f"#app-tabs button:has-text({name!r}), #app-tabs [role=tab]:has-text({name!r})")
        return frame

    def fit(self) -> dict[str, float]:
        """Scroll sizes of the frame's document and the frame box's height, once the page has settled."""
        frame = self.frame
        self.page.wait_for_timeout(400)  # the SDK's resize round trip after the last render
        inner = frame.evaluate("""() => ({scrollWidth: document.documentElement.scrollWidth,
            clientWidth: document.documentElement.clientWidth, scrollHeight: document.documentElement.scrollHeight,
            clientHeight: document.documentElement.clientHeight,
            content: Math.ceil(document.getElementById('app-root').getBoundingClientRect().height)})""")
        inner["frameHeight"] = self.page.eval_on_selector("#app-frame", "f => f.getBoundingClientRect().height")
        inner["frameWidth"] = self.page.eval_on_selector("#app-frame", "f => f.getBoundingClientRect().width")
        return inner

    def assert_fits(self) -> None:
        size = self.fit()
        assert size["scrollWidth"] <= size["clientWidth"], f"horizontal scroll inside the frame: {size}"
        assert size["scrollHeight"] <= size["clientHeight"] + 1, f"vertical scroll inside the frame: {size}"
        assert abs(size["frameHeight"] - size["content"]) <= 2, f"the frame is not as tall as the page: {size}"

    def api(self, method: str, path: str, *, token: str | None = None, body: Any = None,
            auth_id: str | None = None) -> dict[str, Any]:
        """A request to the app's API from inside the frame (the real browser, the page's own origin)."""
        return self.frame.evaluate(
            """async ([method, path, token, body, authId]) => {
                const boot = JSON.parse(document.getElementById('app-boot').textContent);
                const headers = {Accept: 'application/json'};
                if (token !== '') headers.Authorization = 'Bearer ' + (token ?? boot.session);
                if (authId) headers['X-Bitrix24-Auth'] = authId;
                if (body !== null) headers['Content-Type'] = 'application/json';
                const r = await fetch(boot.apiBase + path, {method, headers, credentials: 'omit',
                    body: body === null ? undefined : JSON.stringify(body)});
                let data = null; try { data = await r.json(); } catch (e) {}
                return {status: r.status, body: data};
            }""",
            [method, path, token, body, auth_id],
        )

    def boot(self) -> dict[str, Any]:
        return self.frame.evaluate("() => JSON.parse(document.getElementById('app-boot').textContent)")

    def auth_id(self) -> str:
        """The AUTH_ID the portal page POSTed into the frame (what the SDK holds)."""
        return self.page.evaluate("() => document.querySelector('#app-form input[name=AUTH_ID]').value")


@dataclass
class AppStack:
    """Bitrix24 (the sandbox, a real HTTP server on 127.0.0.1) and the connector (Django's live server on
    localhost, another site): the app's frame is a third-party context as in a real portal."""

    sandbox: Any
    sandbox_url: str
    app_url: str
    open_page: Callable[..., BrowserPage]

    def create_portal(self, domain: str = "demo.bitrix24.test", *, lang: str = "en", seed: str | None = "demo",
                      **kw: Any) -> Any:
        b24 = self.sandbox.create_portal(domain, seed=seed, lang=lang, **kw)
        self.sandbox.set_limits(b24, enabled=False)
        return b24

    def install(self, b24: Any, *, wizard_done: bool = True) -> Any:
        """Install without a browser (the installer page POSTed by the sandbox, then installFinish)."""
        from inportal.models import WizardState
        from portals.models import Portal

        response = self.sandbox.install(b24)
        assert response.status_code == 200, response.text[:2000]
        portal = Portal.objects.get(member_id=b24.member_id)
        if wizard_done:
            WizardState.objects.update_or_create(portal=portal, defaults={"done": True, "step": "finish"})
        return portal

    def frame_url(self, b24: Any, user_id: int | None = None, lang: str | None = None) -> str:
        query = f"portal={b24.member_id}&user_id={user_id or b24.admin().id}"
        return f"{self.sandbox_url}/frame/?{query}" + (f"&lang={lang}" if lang else "")

    def open_app(self, b24: Any, user_id: int | None = None, *, lang: str | None = None, browser: Any = None,
                 ready: str = "#app-root") -> AppView:
        watched = self.open_page(browser=browser)
        view = AppView(watched, self)
        watched.page.goto(self.frame_url(b24, user_id, lang))
        if ready:
            view.wait_ready(ready)
        return view


@pytest.fixture
def app_stack(frontend_build, live_server, settings, transactional_db, open_page) -> Iterator[AppStack]:
    from b24sandbox.clock import RealClock
    from b24sandbox.sandbox import Sandbox

    sb = Sandbox(clock=RealClock(), allow_http=True)
    server = sb.serve("127.0.0.1", 0)
    app_url = live_server.url
    settings.APP_BASE_URL = app_url
    settings.BITRIX24_ALLOW_HTTP = True
    settings.BITRIX24_OAUTH_SERVER = f"{server.base_url}/oauth"
    settings.BITRIX24_OAUTH_HOSTS = [*settings.BITRIX24_OAUTH_HOSTS, "127.0.0.1"]
    settings.RECORDINGS_ALLOW_PRIVATE_HOSTS = True
    settings.RECORDINGS_ALLOW_HTTP = True
    sb.register_app(
        settings.BITRIX24_CLIENT_ID,
        settings.BITRIX24_CLIENT_SECRET,
        scopes=list(settings.BITRIX24_APP_SCOPES),
        app_url=f"{app_url}/bitrix24/app/",
        installer_url=f"{app_url}/bitrix24/install/",
        install_event_url=f"{app_url}/bitrix24/events/",
        redirect_uri=f"{app_url}/bitrix24/oauth/callback/",
    )
    try:
        yield AppStack(sb, server.base_url, app_url, open_page)
    finally:
        server.stop()
    assert not sb.internal_errors, "the sandbox itself failed:\n" + "\n".join(sb.internal_errors)
