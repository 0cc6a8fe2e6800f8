"""The PBX's signed requests skip the pages' middlewares (telephony_app.web_only) and keep what the API
needs: the security headers, the HTTPS redirect, Content-Length. Pages keep the whole stack."""

from __future__ import annotations

import pytest
from pbx_api_fixtures import *  # noqa: F403  (fixtures)
from pbx_api_fixtures import event


def test_a_signed_post_answers_without_session_csrf_or_language(tenant):
    sent = tenant.sim.send_events(event(1), headers={"Accept-Language": "ru", "Cookie": "sessionid=abc; csrftoken=x"})
    headers = {k.lower(): v for k, v in sent.response.headers.items()}
    assert sent.response.status == 202
    # What the API needs stays: SecurityMiddleware's and XFrameOptionsMiddleware's headers, a length.
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "same-origin"
    assert int(headers["content-length"]) == len(sent.response.body)
    # The API speaks English whatever the server's language (docs/pbx-api.md), and sets no cookie.
    assert "content-language" not in headers
    assert "set-cookie" not in headers
    assert "Accept-Language" not in headers.get("vary", "") and "Cookie" not in headers.get("vary", "")


def test_a_signed_request_over_plain_http_is_still_sent_to_https(tenant, settings):
    settings.SECURE_SSL_REDIRECT = True
    sent = tenant.sim.send_events(event(1))
    assert sent.response.status == 301
    assert sent.response.headers["Location"].startswith("https://")


@pytest.mark.django_db
def test_pages_keep_sessions_csrf_and_language(client):
    login = client.get("/console/login/", HTTP_ACCEPT_LANGUAGE="en")
    assert login.status_code == 200
    assert "csrftoken" in login.cookies  # CsrfViewMiddleware ran
    assert login.headers["Content-Language"] == "en"  # LocaleMiddleware ran
    docs = client.get("/api/pbx/v1/docs/", HTTP_ACCEPT_LANGUAGE="en")  # the API's docs are a page
    assert docs.status_code == 200 and docs.headers["Content-Language"] == "en"
