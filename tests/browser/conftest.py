"""Browser tests: Playwright driving Debian's chromium (never a downloaded browser).

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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.e2e)


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


def app_frame(page: Any, timeout: float = 15_000) -> Any:
    """The app's frame inside the sandbox's portal page, once it has loaded."""
    page.wait_for_selector("#app-frame", state="attached", timeout=timeout)
    handle = page.query_selector("#app-frame")
    frame = handle.content_frame()
    assert frame is not None
    return frame
