"""A real browser for the ops pages: Debian's chromium driven by Playwright, offline: every request
that does not go to this machine is aborted and remembered, so a page that needs the internet fails.

Star-import brings the ``browser_page`` fixture (a ``BrowserPage``: ``.page`` and ``.blocked``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

CHROMIUM = "/usr/bin/chromium"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}

__all__ = ["browser_page"]


@dataclass
class BrowserPage:
    page: object
    blocked: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)


@pytest.fixture
def browser_page(live_server, monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the live server's DB work is in its own
    # thread, and the test's own ORM calls between page actions are ordinary synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
        result = BrowserPage(page=None)

        def route(route):
            host = urlsplit(route.request.url).hostname or ""
            if route.request.url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
                return route.continue_()
            result.blocked.append(route.request.url)
            return route.abort("internetdisconnected")

        context.route("**/*", route)
        page = context.new_page()
        page.on("console", lambda msg: result.console_errors.append(msg.text) if msg.type == "error" else None)
        page.set_default_timeout(20000)
        result.page = page
        try:
            yield result
        finally:
            context.close()
            browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
