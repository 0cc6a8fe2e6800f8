"""OAuthApp against the Bitrix24 OAuth server's documented responses (docs/bitrix24-contract.md §1.7-1.11)."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from b24client_fixtures import (
    CLIENT_ID,
    CLIENT_SECRET,
    ENDPOINT,
    MEMBER_ID,
    OAUTH_SERVER,
    TOKEN_URL,
    make_creds,
    make_oauth,
    token_response,
)

from b24client import OAuthApp, errors


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def query(call) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(call.request.url).query).items()}


def test_exchange_code_is_a_get_with_query_params_and_parses_bitrix_fields(rsps):
    # §1.7 code-exchange response: no expires/user_id, domain is the OAuth server.
    rsps.get(TOKEN_URL, json={"access_token": "at", "client_endpoint": ENDPOINT, "domain": "oauth.bitrix.info",
                              "expires_in": 3600, "member_id": MEMBER_ID, "refresh_token": "rt",
                              "scope": "crm,entity,im,task", "server_endpoint": f"{OAUTH_SERVER}/rest/", "status": "F"})

    creds = make_oauth().exchange_code("code-123")

    assert rsps.calls[0].request.method == "GET"
    assert query(rsps.calls[0]) == {"grant_type": "authorization_code", "client_id": CLIENT_ID,
                                    "client_secret": CLIENT_SECRET, "code": "code-123"}
    assert creds.client_endpoint == ENDPOINT and creds.portal_host == "acme.bitrix24.com"
    assert creds.member_id == MEMBER_ID and creds.scope == ("crm", "entity", "im", "task")
    assert creds.expires_at == pytest.approx(time.time() + 3600, abs=5) and creds.user_id is None


def test_refresh_uses_absolute_expiry_and_keeps_the_new_refresh_token(rsps):
    rsps.get(TOKEN_URL, json=token_response(2))

    creds = make_oauth().refresh(make_creds())

    assert query(rsps.calls[0])["refresh_token"] == "refresh-token-1"
    assert (creds.access_token, creds.refresh_token, creds.expires_at, creds.user_id) == (
        "access-token-2", "refresh-token-2", 1780319382.0, 67)


def test_refresh_goes_to_the_stored_server_endpoint_only_if_its_host_is_allowed(rsps):
    rsps.get("https://oauth.bitrix24.tech/oauth/token/", json=token_response(2))
    rsps.get(TOKEN_URL, json=token_response(3))
    app = OAuthApp(CLIENT_ID, CLIENT_SECRET, OAUTH_SERVER, allowed_hosts={"oauth.bitrix24.tech"})

    app.refresh(make_creds(server_endpoint="https://oauth.bitrix24.tech/rest/"))
    app.refresh(make_creds(server_endpoint="https://evil.example.com/rest/"))
    app.refresh(make_creds(server_endpoint="http://oauth.bitrix24.tech/rest/"))  # allowed host, but plain http

    hosts = [urlsplit(c.request.url).netloc for c in rsps.calls]
    assert hosts == ["oauth.bitrix24.tech", "oauth.bitrix.info", "oauth.bitrix.info"]


@pytest.mark.parametrize(("status", "body", "expected"), [
    (400, {"error": "invalid_grant"}, errors.TokenDead),
    (400, {"error": "invalid_client", "error_description": "Invalid client"}, errors.TokenDead),
    (401, {"error": "invalid_client"}, errors.TokenDead),
    (401, {"error": "NOT_INSTALLED", "error_description": "Application not installed"}, errors.TokenDead),
    (401, {"error": "PAYMENT_REQUIRED", "error_description": "Payment required"}, errors.TokenDead),
    (200, {"error": "wrong_client", "error_description": "Wrong client"}, errors.InvalidRequest),
    (400, {"error": "invalid_request", "error_description": 'No "refresh_token" parameter found'}, errors.InvalidRequest),
    (403, {"error": "invalid_scope"}, errors.AccessDenied),
    (500, None, errors.Transient),
    (503, {"error": "temporarily_unavailable"}, errors.Transient),
])
def test_refresh_errors_map_to_exception_classes(rsps, status, body, expected):
    if body is None:
        rsps.get(TOKEN_URL, status=status, body="<html>oops</html>")
    else:
        rsps.get(TOKEN_URL, status=status, json=body)

    with pytest.raises(expected) as info:
        make_oauth().refresh(make_creds())

    assert type(info.value) is expected


def test_bad_code_is_a_failed_sign_in_not_a_dead_portal(rsps):
    rsps.get(TOKEN_URL, status=400, json={"error": "invalid_grant"})

    with pytest.raises(errors.InvalidRequest) as info:
        make_oauth().exchange_code("expired-code")

    assert not isinstance(info.value, errors.TokenDead)


def test_refresh_answer_for_another_portal_is_rejected(rsps):
    rsps.get(TOKEN_URL, json=token_response(2, member_id="someone-else"))

    with pytest.raises(errors.InvalidRequest, match="different portal"):
        make_oauth().refresh(make_creds())


def test_token_response_missing_fields_or_with_http_portal_is_rejected(rsps):
    rsps.get(TOKEN_URL, json={"access_token": "x"})
    with pytest.raises(errors.InvalidRequest):
        make_oauth().exchange_code("c")

    rsps.replace(responses.GET, TOKEN_URL, json=token_response(2, client_endpoint="http://acme.bitrix24.com/rest/"))
    with pytest.raises(errors.InvalidRequest, match="non-HTTPS"):
        make_oauth().refresh(make_creds())


def test_connection_failure_is_transient(rsps):
    import requests

    rsps.get(TOKEN_URL, body=requests.ConnectTimeout("timed out"))
    with pytest.raises(errors.Transient):
        make_oauth().refresh(make_creds())


def test_app_info_asks_the_oauth_server_and_returns_the_result(rsps):
    info = {"client_id": CLIENT_ID, "scope": "crm,user", "expires": "1773240588", "user_id": 42,
            "install": {"installed": True, "version": 1, "status": "P", "member_id": MEMBER_ID,
                        "domain": "acme.bitrix24.com", "client_endpoint": ENDPOINT}}
    rsps.get(f"{OAUTH_SERVER}/rest/app.info", json={"result": info, "time": {}})

    assert make_oauth().app_info("token-xyz") == info
    assert query(rsps.calls[0]) == {"auth": "token-xyz"}


def test_app_info_with_an_invalid_token_is_access_denied_not_a_dead_portal(rsps):
    rsps.get(f"{OAUTH_SERVER}/rest/app.info", status=401, json={"error": "invalid_client"})

    with pytest.raises(errors.AccessDenied):
        make_oauth().app_info("forged")


def test_authorization_url_carries_client_id_and_a_fresh_state():
    app = make_oauth()

    url, state = app.authorization_url("acme.bitrix24.com")
    url2, state2 = app.authorization_url("https://acme.bitrix24.com/rest/")

    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "acme.bitrix24.com", "/oauth/authorize/")
    assert parse_qs(parts.query) == {"response_type": ["code"], "client_id": [CLIENT_ID], "state": [state]}
    assert state != state2 and len(state) >= 20 and urlsplit(url2).path == "/oauth/authorize/"
    with pytest.raises(errors.InvalidRequest):
        app.authorization_url("http://acme.bitrix24.com/")


def test_authorization_url_for_a_path_based_http_sandbox_portal_when_allowed():
    app = OAuthApp(CLIENT_ID, CLIENT_SECRET, "http://127.0.0.1:8001/oauth", allow_http=True)

    url, state = app.authorization_url("http://127.0.0.1:8001/portal/acme.bitrix24.test/rest/")

    assert url.startswith("http://127.0.0.1:8001/portal/acme.bitrix24.test/oauth/authorize/?response_type=code&client_id=")
    assert state in url


def test_redirect_with_a_foreign_state_is_rejected():
    with pytest.raises(errors.InvalidRequest, match="state"):
        OAuthApp.parse_redirect({"code": "c", "state": "attacker"}, expected_state="mine")
    got = OAuthApp.parse_redirect({"code": "c", "state": "mine", "domain": "acme.bitrix24.com",
                                   "member_id": MEMBER_ID, "scope": "crm,telephony", "server_domain": "oauth.bitrix.info"},
                                  expected_state="mine")
    assert got["code"] == "c" and got["member_id"] == MEMBER_ID


def test_oauth_recorder_never_sees_the_client_secret_or_tokens(rsps):
    rsps.get(TOKEN_URL, json=token_response(2))
    records: list[dict] = []

    make_oauth(recorder=records.append).refresh(make_creds())

    text = repr(records)
    assert CLIENT_SECRET not in text and "refresh-token-1" not in text and "access-token-2" not in text
    assert records[0]["method"] == "oauth.refresh_token" and records[0]["status"] == 200


def test_http_oauth_server_needs_allow_http():
    with pytest.raises(errors.InvalidRequest):
        OAuthApp(CLIENT_ID, CLIENT_SECRET, "http://oauth.example.test")
