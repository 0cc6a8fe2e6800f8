"""The PBX API docs render in a browser with no internet: Redoc and Swagger UI come from our static files."""

from __future__ import annotations

import pytest
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from browser_fixtures import *  # noqa: F403  (fixture: browser_page)

pytestmark = pytest.mark.e2e


def test_redoc_renders_the_pbx_api_offline(browser_page, live_server):
    page = browser_page.page
    page.goto(f"{live_server.url}/api/pbx/v1/docs/")
    # Rendered by Redoc from the schema: the API title and an operation of the PBX API.
    page.get_by_role("heading", name="PBX API").first.wait_for()
    page.get_by_text("/api/pbx/v1/connections/{connection_id}/events").first.wait_for(state="attached")
    assert browser_page.blocked == [], f"the docs page wanted the internet: {browser_page.blocked}"
    page.screenshot(path=str(live_server_screenshot("redoc")))


def test_swagger_ui_renders_the_pbx_api_offline(browser_page, live_server):
    page = browser_page.page
    page.goto(f"{live_server.url}/api/pbx/v1/swagger/")
    page.locator(".swagger-ui .info .title").filter(has_text="PBX API").wait_for()
    page.locator(".opblock-summary-path").filter(has_text="/events").first.wait_for()
    assert browser_page.blocked == [], f"the docs page wanted the internet: {browser_page.blocked}"


def live_server_screenshot(name: str):
    from pathlib import Path

    directory = Path(__file__).resolve().parents[2] / "var" / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{name}.png"
