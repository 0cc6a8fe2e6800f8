"""Install flows: docs/bitrix24-contract.md §1.3 (iframe POST), §1.4 (installFinish), §1.5 (ONAPPINSTALL),
§1.6 (update, uninstall), §2.8 (renamed portal), §8 (placement frames)."""

from __future__ import annotations

import json

import pytest
import requests
from sandbox_fixtures import *  # noqa: F403  (fixtures)

from b24sandbox import InstallError, call_card_options
from b24sandbox.pytest_plugin import INSTALL_EVENT_URL, INSTALLER_URL, RestCaller

EVENTS = "https://app.example.test/b24/events/"


def test_installer_page_is_a_post_with_fields_split_between_query_and_body_1_3(sb, inbox):
    portal = sb.create_portal("acme.bitrix24.test")
    sb.install_ui(portal)
    page = inbox.pages()[-1]
    assert page.url.startswith(INSTALLER_URL + "?")
    assert set(page.query) == {"DOMAIN", "PROTOCOL", "LANG", "APP_SID"}
    assert page.query["DOMAIN"] == "acme.bitrix24.test" and page.query["PROTOCOL"] == "1"
    assert page.headers["Content-Type"] == "application/x-www-form-urlencoded"
    body = page.flat
    assert set(body) == {"AUTH_ID", "AUTH_EXPIRES", "REFRESH_ID", "SERVER_ENDPOINT", "APPLICATION_TOKEN",
                         "APPLICATION_SCOPE", "member_id", "status", "PLACEMENT"}
    assert body["AUTH_EXPIRES"] == "3600"  # seconds, not a timestamp
    assert body["SERVER_ENDPOINT"] == "https://oauth.sandbox.test/rest/"
    assert body["APPLICATION_TOKEN"] == portal.app.application_token
    assert body["APPLICATION_SCOPE"] == "telephony,crm,user_basic,placement"
    assert body["member_id"] == portal.member_id and body["PLACEMENT"] == "DEFAULT"


def test_legacy_iframe_style_sends_everything_in_the_post_body_11_6(sb, inbox):
    sb.iframe_style = "legacy"
    portal = sb.create_portal("acme.bitrix24.test")
    sb.install_ui(portal)
    page = inbox.pages()[-1]
    assert page.url == INSTALLER_URL
    assert {"DOMAIN", "PROTOCOL", "LANG", "APP_SID", "AUTH_ID", "member_id"} <= set(page.flat)
    assert "APPLICATION_TOKEN" not in page.flat


def test_rest_works_before_install_finish_and_app_info_follows_installed_1_4(sb, inbox):
    portal = sb.create_portal("acme.bitrix24.test")
    sb.install_ui(portal)
    rest = RestCaller(sb, portal, inbox.pages()[-1].flat["AUTH_ID"])
    assert rest.result("app.info")["INSTALLED"] is False
    assert rest.result("event.bind", {"event": "ONEXTERNALCALLSTART", "handler": EVENTS}) is True
    sb.install_finish(portal)
    assert rest.result("app.info")["INSTALLED"] is True


def test_no_event_is_delivered_before_install_finish_1_4_4_2(sb, inbox):
    portal = sb.create_portal("acme.bitrix24.test")
    sb.install_ui(portal)
    rest = RestCaller(sb, portal, inbox.pages()[-1].flat["AUTH_ID"])
    rest.result("event.bind", {"event": "ONEXTERNALCALLSTART", "handler": EVENTS})
    sb.click_to_call(portal, 2, "+74951234567")
    assert inbox.events() == []
    assert sb.deliveries(portal)[-1].error == "suppressed: installation not finished"
    sb.install_finish(portal)
    sb.click_to_call(portal, 2, "+74951234567")
    assert [r.event for r in inbox.events()] == ["ONEXTERNALCALLSTART"]


def test_onappinstall_goes_to_the_install_handler_with_the_admins_tokens_and_refresh_token_1_5(sb, inbox):
    portal = sb.create_portal("acme.bitrix24.test")
    sb.install_ui(portal)
    sb.send_onappinstall(portal)
    event = inbox.events("ONAPPINSTALL")[-1]
    assert event.url == INSTALL_EVENT_URL
    form = event.form
    assert form["data"] == {"VERSION": "1", "ACTIVE": "Y", "INSTALLED": "N", "LANGUAGE_ID": "en"}
    auth = form["auth"]
    assert auth["user_id"] == "1" and auth["refresh_token"] and auth["member_id"] == portal.member_id
    assert auth["application_token"] == portal.app.application_token
    assert RestCaller(sb, portal, auth["access_token"]).result("user.admin") is True


def test_only_an_administrator_can_install_1_4(sb):
    portal = sb.create_portal("acme.bitrix24.test")
    with pytest.raises(InstallError):
        sb.install_ui(portal, user_id=2)


def test_uninstall_sends_onappuninstall_with_only_application_token_and_clean_flag_1_6(sb, portal, rest, inbox):
    rest.result("event.bind", {"event": "ONAPPUNINSTALL", "handler": EVENTS})
    sb.uninstall(portal, clean=True)
    form = inbox.events("ONAPPUNINSTALL")[-1].form
    assert form["data"] == {"LANGUAGE_ID": "en", "CLEAN": "1"}
    assert set(form["auth"]) == {"domain", "server_endpoint", "client_endpoint", "member_id", "application_token"}


def test_uninstall_revokes_every_token_and_removes_bindings_and_placements_1_6(sb, portal, rest):
    other_user = sb.issue_token(portal, 2)["access_token"]
    rest.result("event.bind", {"event": "ONEXTERNALCALLSTART", "handler": EVENTS})
    rest.result("placement.bind", {"PLACEMENT": "CALL_CARD", "HANDLER": "https://app.example.test/card/"})
    sb.uninstall(portal)
    for token in (rest.token, other_user):
        response = rest.call("profile", token=token)
        assert response.status_code == 401 and response.json()["error"] == "ERROR_OAUTH"
    assert portal.event_bindings == [] and portal.placements == []


def test_app_options_survive_uninstall_unless_clean_1_6_10_1(sb, portal, rest, inbox):
    rest.result("app.option.set", {"options": {"pbx": "vendor-1"}})
    sb.reinstall(portal, clean=False)
    fresh = RestCaller(sb, portal, inbox.pages()[-1].flat["AUTH_ID"])
    assert fresh.result("app.option.get", {"option": "pbx"}) == "vendor-1"
    sb.reinstall(portal, clean=True)
    fresh = RestCaller(sb, portal, inbox.pages()[-1].flat["AUTH_ID"])
    assert fresh.result("app.option.get", {"option": "pbx"}) is None


def test_reinstall_issues_a_new_application_token_and_old_tokens_stay_dead_1_6(sb, portal, rest, inbox):
    before = portal.app.application_token
    sb.reinstall(portal)
    assert portal.app.application_token != before
    assert inbox.pages()[-1].flat["APPLICATION_TOKEN"] == portal.app.application_token
    assert rest.call("profile").status_code == 401


def test_update_sends_onappupdate_with_new_application_token_then_drops_bindings_1_6(sb, portal, rest, inbox):
    rest.result("event.bind", {"event": "ONAPPUPDATE", "handler": EVENTS})
    rest.result("event.bind", {"event": "ONEXTERNALCALLSTART", "handler": EVENTS})
    old_token = portal.app.application_token
    sb.update_app(portal)
    form = inbox.events("ONAPPUPDATE")[-1].form
    assert form["data"] == {"VERSION": "2", "PREVIOUS_VERSION": "1", "LANGUAGE_ID": "en"}
    assert form["auth"]["application_token"] == portal.app.application_token != old_token
    assert rest.result("event.get") == []


def test_renamed_portal_answers_302_to_the_new_address_for_rest_2_8(sb, portal, rest):
    sb.rename_portal(portal, "acme-new.bitrix24.test")
    old = requests.post("https://acme.bitrix24.test/rest/profile.json?auth=" + rest.token, allow_redirects=False,
                        timeout=5)
    assert old.status_code == 302
    assert old.headers["Location"] == f"https://acme-new.bitrix24.test/rest/profile.json?auth={rest.token}"
    followed = requests.get("https://acme.bitrix24.test/rest/profile.json", params={"auth": rest.token}, timeout=5)
    assert followed.status_code == 200 and followed.url.startswith("https://acme-new.bitrix24.test/")
    assert sb.issue_token(portal)["client_endpoint"] == "https://acme-new.bitrix24.test/rest/"


def test_app_page_is_refused_to_non_admins_until_install_finish_1_4(sb, inbox):
    portal = sb.create_portal("acme.bitrix24.test")
    sb.install_ui(portal)
    with pytest.raises(InstallError, match="not fully installed"):
        sb.open_app(portal, 2)
    sb.install_finish(portal)
    sb.open_app(portal, 2)
    assert inbox.pages()[-1].flat["PLACEMENT"] == "DEFAULT"


def test_call_card_placement_opens_with_placement_options_as_a_json_string_8(sb, portal, rest, inbox):
    rest.result("placement.bind", {"PLACEMENT": "CALL_CARD", "HANDLER": "https://app.example.test/card/"})
    sb.open_app(portal, 2, placement="CALL_CARD", options=call_card_options("externalCall.x.1", line_number="101"))
    page = inbox.pages()[-1]
    assert page.url.startswith("https://app.example.test/card/?DOMAIN=")
    options = json.loads(page.flat["PLACEMENT_OPTIONS"])
    assert options["CRM_ACTIVITY_ID"] == "undefined" and options["CALL_LIST_MODE"] == "false"
    assert options["CALL_ID"] == "externalCall.x.1" and options["LINE_NAME"] == "101"


def test_portal_side_app_info_answers_only_while_the_app_is_installed_1_6_1_11(sb, portal, rest, clock):
    # The app confirms an ONAPPUNINSTALL this way: a token that still works means the event is forged.
    assert rest.result("app.info")["INSTALLED"] is True
    sb.uninstall(portal)
    revoked = rest.call("app.info")
    assert revoked.status_code == 401 and revoked.json()["error"] == "ERROR_OAUTH"
    clock.advance(2 * 3600)  # expired as well as revoked: still "not installed", never expired_token
    assert rest.call("app.info").json()["error"] == "ERROR_OAUTH"
