"""The OAuth server: docs/bitrix24-contract.md §1.7 (authorization code), §1.8 (refresh), §1.9 (lifetimes,
single use), §1.10 (errors), §1.11 (OAuth-side app.info)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import requests
from sandbox_fixtures import *  # noqa: F403  (fixtures)

from b24sandbox.pytest_plugin import APP_URL, CLIENT_ID, CLIENT_SECRET

TOKEN_URL = "https://oauth.sandbox.test/oauth/token/"


def refresh(refresh_token: str, *, post: bool = False, **extra: str) -> requests.Response:
    params = {"grant_type": "refresh_token", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
              "refresh_token": refresh_token, **extra}
    if post:
        return requests.post(TOKEN_URL, data=params, timeout=5)
    return requests.get(TOKEN_URL, params=params, timeout=5)


def authorize(sb, portal, state: str = "xyz") -> dict[str, str]:
    response = requests.get(
        f"https://{portal.domain}/oauth/authorize/", params={"client_id": CLIENT_ID, "state": state},
        allow_redirects=False, timeout=5,
    )
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(APP_URL)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def exchange(code: str) -> requests.Response:
    return requests.get(TOKEN_URL, params={"grant_type": "authorization_code", "client_id": CLIENT_ID,
                                           "client_secret": CLIENT_SECRET, "code": code}, timeout=5)


def test_authorize_redirects_with_code_state_domain_member_id_scope_and_server_domain_1_7(sb, portal):
    query = authorize(sb, portal, state="opaque-42")
    assert query["state"] == "opaque-42"
    assert query["domain"] == "acme.bitrix24.test"
    assert query["member_id"] == portal.member_id
    assert query["scope"] == "telephony,crm,user_basic,placement"
    assert query["server_domain"] == "oauth.sandbox.test"
    assert query["code"]


def test_authorize_redirects_to_the_configured_redirect_uri_1_7(sb, portal):
    sb.app.redirect_uri = "https://app.example.test/oauth/callback/"
    response = requests.get(f"https://{portal.domain}/oauth/authorize/", params={"client_id": CLIENT_ID},
                            allow_redirects=False, timeout=5)
    assert response.headers["Location"].startswith("https://app.example.test/oauth/callback/?code=")


def test_authorize_without_the_app_installed_shows_an_error_page_and_does_not_redirect_1_7(sb):
    other = sb.create_portal("bare.bitrix24.test")
    response = requests.get(f"https://{other.domain}/oauth/authorize/", params={"client_id": CLIENT_ID},
                            allow_redirects=False, timeout=5)
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_code_exchange_returns_the_documented_token_shape_with_oauth_host_as_domain_1_7(sb, portal, clock):
    body = exchange(authorize(sb, portal)["code"]).json()
    assert set(body) == {"access_token", "client_endpoint", "domain", "expires", "expires_in", "member_id",
                         "refresh_token", "scope", "server_endpoint", "status", "user_id"}
    assert body["domain"] == "oauth.sandbox.test"
    assert body["client_endpoint"] == "https://acme.bitrix24.test/rest/"
    assert body["server_endpoint"] == "https://oauth.sandbox.test/rest/"
    assert body["expires_in"] == 3600 and body["expires"] == int(clock.now() + 3600)
    assert body["scope"] == "telephony,crm,user_basic,placement"
    assert body["member_id"] == portal.member_id and body["user_id"] == 1 and body["status"] == "F"


def test_code_works_once_1_9(sb, portal):
    code = authorize(sb, portal)["code"]
    assert exchange(code).status_code == 200
    second = exchange(code)
    assert second.status_code == 400 and second.json() == {"error": "invalid_grant"}


def test_code_dies_after_30_seconds_1_7(sb, portal, clock):
    code = authorize(sb, portal)["code"]
    clock.advance(31)
    assert exchange(code).json()["error"] == "invalid_grant"


def test_refresh_by_get_and_by_post_rotates_the_refresh_token_1_8(sb, portal):
    first = sb.issue_token(portal, 2)
    by_get = refresh(first["refresh_token"])
    assert by_get.status_code == 200
    assert by_get.json()["refresh_token"] != first["refresh_token"] and by_get.json()["user_id"] == 2
    by_post = refresh(by_get.json()["refresh_token"], post=True)
    assert by_post.status_code == 200 and by_post.json()["access_token"] != by_get.json()["access_token"]


def test_reused_refresh_token_gets_invalid_grant_1_9(sb, portal):
    token = sb.issue_token(portal)
    assert refresh(token["refresh_token"]).status_code == 200
    reused = refresh(token["refresh_token"])
    assert reused.status_code == 400 and reused.json() == {"error": "invalid_grant"}


def test_old_access_token_survives_a_refresh_unless_configured_to_die_1_9_11_2(sb, portal, rest):
    token = sb.issue_token(portal)
    refresh(token["refresh_token"])
    assert rest.call("profile", token=token["access_token"]).status_code == 200
    sb.kill_access_on_refresh = True
    token = sb.issue_token(portal)
    refresh(token["refresh_token"])
    dead = rest.call("profile", token=token["access_token"])
    assert dead.status_code == 401 and dead.json()["error"] == "invalid_token"


def test_access_token_expires_on_the_test_clock_and_refresh_brings_it_back_1_9(sb, portal, rest, clock):
    sb.access_lifetime = 600
    token = sb.issue_token(portal)
    assert rest.call("profile", token=token["access_token"]).status_code == 200
    clock.advance(601)
    expired = rest.call("profile", token=token["access_token"])
    assert expired.status_code == 401
    assert expired.json() == {"error": "expired_token", "error_description": "The access token provided has expired."}
    fresh = refresh(token["refresh_token"]).json()
    assert fresh["expires_in"] == 600
    assert rest.call("profile", token=fresh["access_token"]).status_code == 200


def test_refresh_token_expires_after_its_lifetime_1_9(sb, portal, clock):
    sb.refresh_lifetime = 28 * 86400
    token = sb.issue_token(portal)
    clock.advance(28 * 86400 + 1)
    assert refresh(token["refresh_token"]).json() == {"error": "invalid_grant"}


def test_token_endpoint_errors_1_10(sb, portal):
    token = sb.issue_token(portal)
    missing = requests.get(TOKEN_URL, params={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}, timeout=5)
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    no_refresh = requests.get(TOKEN_URL, params={"grant_type": "refresh_token", "client_id": CLIENT_ID,
                                                 "client_secret": CLIENT_SECRET}, timeout=5)
    assert no_refresh.json() == {"error": "invalid_request", "error_description": 'No "refresh_token" parameter found'}
    bad_secret = refresh(token["refresh_token"], client_secret="nope")
    assert bad_secret.status_code == 401 and bad_secret.json()["error"] == "invalid_client"
    sb.wrong_client_style = "wrong_client"
    wrong = refresh(token["refresh_token"], client_id="someone.else")
    assert wrong.status_code == 200 and wrong.json()["error"] == "wrong_client"
    # none of the failures used up the refresh token
    assert refresh(token["refresh_token"]).status_code == 200


def test_refresh_after_uninstall_answers_not_installed_1_10(sb, portal):
    token = sb.issue_token(portal)
    sb.uninstall(portal)
    response = refresh(token["refresh_token"])
    assert response.status_code == 401 and response.json()["error"] == "NOT_INSTALLED"


def test_unpaid_app_gets_payment_required_and_no_tokens_1_10(sb, portal):
    token = sb.issue_token(portal)
    portal.app.payment_expired = True
    response = refresh(token["refresh_token"])
    assert response.status_code == 401 and response.json()["error"] == "PAYMENT_REQUIRED"


def test_oauth_app_info_identifies_app_portal_and_install_state_1_11(sb, inbox):
    portal = sb.create_portal("beta.bitrix24.test")
    sb.install_ui(portal)
    token = inbox.pages()[-1].flat["AUTH_ID"]
    info = requests.get("https://oauth.sandbox.test/rest/app.info", params={"auth": token}, timeout=5).json()
    assert info["result"]["client_id"] == CLIENT_ID
    assert info["result"]["install"]["member_id"] == portal.member_id
    assert info["result"]["install"]["installed"] is False
    sb.install_finish(portal)
    info = requests.get("https://oauth.sandbox.test/rest/app.info", params={"auth": token}, timeout=5).json()
    assert info["result"]["install"]["installed"] is True
    assert info["result"]["install"]["client_endpoint"] == "https://beta.bitrix24.test/rest/"


def test_oauth_app_info_rejects_an_unknown_token_with_invalid_client_1_11(sb, portal):
    response = requests.get("https://oauth.sandbox.test/rest/app.info", params={"auth": "0" * 32}, timeout=5)
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
