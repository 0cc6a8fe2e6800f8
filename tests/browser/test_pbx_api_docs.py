"""The PBX API docs render in a browser with no internet: Redoc and Swagger UI come from our own static
files (drf-spectacular-sidecar), and the Redoc page loads no web fonts."""

from __future__ import annotations

import re

import pytest

from browser.offline import go_offline

# Redoc's sidebar credit ("API docs by Redocly") tries its logo from Redocly's CDN and hides itself
# when that fails; nothing else may leave the machine.
REDOC_CREDIT_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture
def offline_page(open_page):
    watched = open_page()
    watched.blocked = go_offline(watched.context)
    return watched


def test_redoc_renders_the_pbx_api_offline(offline_page, live_server):
    offline_page.allow_console(re.escape(REDOC_CREDIT_LOGO))  # its failed request and console line
    page = offline_page.page
    page.goto(f"{live_server.url}/api/pbx/v1/docs/")
    page.get_by_role("heading", name="PBX API").first.wait_for()
    page.get_by_text("/api/pbx/v1/connections/{connection_id}/events").first.wait_for(state="attached")
    assert page.locator("script[src*='sidecar']").count() == 1  # Redoc itself from our static files
    assert set(offline_page.blocked) <= {REDOC_CREDIT_LOGO}, offline_page.blocked


def test_swagger_ui_renders_the_pbx_api_offline(offline_page, live_server):
    page = offline_page.page
    page.goto(f"{live_server.url}/api/pbx/v1/swagger/")
    page.locator(".swagger-ui .info .title").filter(has_text="PBX API").wait_for()
    page.locator(".opblock-summary-path").filter(has_text="/events").first.wait_for()
    assert offline_page.blocked == []
