"""Server mode: the same core as a real HTTP server with path-based hosts (architecture.md), the demo page,
and in-process pass-through of non-sandbox hosts."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from sandbox_fixtures import *  # noqa: F403  (fixtures)

from b24sandbox.pytest_plugin import AppInbox, make_sandbox
from b24sandbox.sandbox import Sandbox
from b24sandbox.server import SandboxServer

HANDLER = "https://app.example.test/b24/events/"


@pytest.fixture
def served() -> Iterator[tuple[Sandbox, AppInbox, SandboxServer]]:
    sb, inbox = make_sandbox()
    server = sb.serve("127.0.0.1", 0)
    try:
        yield sb, inbox, server
    finally:
        server.stop()
    assert not sb.internal_errors, "\n".join(sb.internal_errors)


def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def test_portals_and_oauth_are_path_based_on_the_server(served):
    sb, inbox, server = served
    portal = sb.create_portal("acme.bitrix24.test")
    sb.install(portal)
    page = inbox.pages()[-1]
    assert page.query["DOMAIN"] == f"{server.base_url[7:]}/portal/acme.bitrix24.test"
    assert page.query["PROTOCOL"] == "0"
    assert page.flat["SERVER_ENDPOINT"] == f"{server.base_url}/oauth/rest/"
    token = page.flat["AUTH_ID"]
    users = requests.post(f"{server.base_url}/portal/acme.bitrix24.test/rest/user.get.json",
                          json={"auth": token, "filter": {"UF_PHONE_INNER": "102"}}, timeout=5)
    assert users.status_code == 200 and users.json()["result"][0]["ID"] == "3"
    refreshed = requests.post(f"{server.base_url}/oauth/oauth/token/", data={
        "grant_type": "refresh_token", "client_id": sb.app.client_id, "client_secret": sb.app.client_secret,
        "refresh_token": page.flat["REFRESH_ID"]}, timeout=5).json()
    assert refreshed["client_endpoint"] == f"{server.base_url}/portal/acme.bitrix24.test/rest/"
    assert refreshed["domain"] == server.base_url[7:] + "/oauth"
    info = requests.get(f"{server.base_url}/oauth/rest/app.info", params={"auth": refreshed["access_token"]},
                        timeout=5).json()
    assert info["result"]["install"]["member_id"] == portal.member_id


def test_server_mode_delivers_events_from_a_background_worker(served):
    sb, inbox, server = served
    portal = sb.create_portal("acme.bitrix24.test")
    sb.install(portal)
    token = inbox.pages()[-1].flat["AUTH_ID"]
    requests.post(f"{server.portal_url(portal.domain)}/rest/event.bind",
                  json={"auth": token, "event": "ONEXTERNALCALLSTART", "handler": HANDLER}, timeout=5)
    call_id = sb.click_to_call(portal, 2, "+74951234567")
    wait_for(lambda: inbox.events("ONEXTERNALCALLSTART"))
    event = inbox.events("ONEXTERNALCALLSTART")[0].form
    assert event["data"]["CALL_ID"] == call_id
    assert event["auth"]["client_endpoint"] == f"{server.base_url}/portal/acme.bitrix24.test/rest/"


def test_server_mode_drop_fault_closes_the_socket(served):
    sb, _inbox, server = served
    portal = sb.create_portal("acme.bitrix24.test")
    sb.faults.add("drop", portal=portal)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.portal_url(portal.domain)}/rest/profile", timeout=5)
    assert requests.get(f"{server.portal_url(portal.domain)}/rest/profile", timeout=5).status_code == 401


def test_server_mode_rename_redirects_to_the_new_path_2_8(served):
    sb, _inbox, server = served
    portal = sb.create_portal("acme.bitrix24.test")
    sb.rename_portal(portal, "acme2.bitrix24.test")
    response = requests.post(f"{server.base_url}/portal/acme.bitrix24.test/rest/profile?x=1", allow_redirects=False,
                             timeout=5)
    assert response.status_code == 302
    assert response.headers["Location"] == f"{server.base_url}/portal/acme2.bitrix24.test/rest/profile?x=1"


def test_demo_page_shows_portals_escaped_and_auto_refreshes_its_state(served):
    sb, _inbox, server = served
    portal = sb.create_portal("acme.bitrix24.test")
    portal.users[2].name = "<script>alert(1)</script>"
    page = requests.get(server.base_url + "/", timeout=5).text
    assert "acme.bitrix24.test" in page and "<script>alert(1)" not in page and "&lt;script&gt;" in page
    status = requests.get(f"{server.base_url}/demo/status", params={"portal": portal.member_id}, timeout=5).text
    assert 'http-equiv=refresh' in status


def test_a_person_installs_clicks_a_number_and_submits_a_callback_form_on_the_demo_page(served):
    sb, inbox, server = served
    portal = sb.create_portal("demo.bitrix24.test", seed="demo")
    response = requests.post(f"{server.base_url}/demo/install", data={"portal": portal.member_id}, timeout=5)
    assert response.status_code == 200 and "Installed on demo.bitrix24.test" in response.text
    token = inbox.pages()[-1].flat["AUTH_ID"]
    for event in ("ONEXTERNALCALLSTART", "ONEXTERNALCALLBACKSTART"):
        requests.post(f"{server.portal_url(portal.domain)}/rest/event.bind",
                      json={"auth": token, "event": event, "handler": HANDLER}, timeout=5)
    clicked = requests.post(f"{server.base_url}/demo/click",
                            data={"portal": portal.member_id, "user_id": "1", "phone": "+7 (495) 111-22-33"}, timeout=5)
    assert "ONEXTERNALCALLSTART with CALL_ID externalCall." in clicked.text
    requests.post(f"{server.base_url}/demo/callback", data={"portal": portal.member_id, "phone": "+79160001122",
                                                           "text": "Please call"}, timeout=5)
    wait_for(lambda: inbox.events("ONEXTERNALCALLBACKSTART"))
    assert inbox.events("ONEXTERNALCALLBACKSTART")[0].form["data"]["TEXT"] == "Please call"
    status = requests.get(f"{server.base_url}/demo/status", params={"portal": portal.member_id}, timeout=5).text
    assert "externalCall." in status and "ONEXTERNALCALLSTART" in status


def test_demo_open_app_renders_an_auto_submitting_iframe_post_1_3(served):
    sb, _inbox, server = served
    portal = sb.create_portal("acme.bitrix24.test")
    sb.install(portal)
    html = requests.get(f"{server.base_url}/demo/open", params={"portal": portal.member_id}, timeout=5).text
    assert 'method=post action="https://app.example.test/b24/app/?DOMAIN=' in html
    assert 'name="AUTH_ID"' in html and "document.forms[0].submit()" in html


def test_demo_refuses_bad_actions_with_a_message(served):
    sb, _inbox, server = served
    portal = sb.create_portal("acme.bitrix24.test")
    response = requests.post(f"{server.base_url}/demo/click",
                             data={"portal": portal.member_id, "user_id": "2", "phone": "+74950000000"}, timeout=5)
    assert "Refused: the app is not installed" in response.text


def test_in_process_mode_passes_other_hosts_through_to_the_real_network(sb, served):
    # sb is activated in-process (responses); the served sandbox is a real server on 127.0.0.1
    _, _, server = served
    response = requests.get(server.base_url + "/", timeout=5)
    assert response.status_code == 200 and "Bitrix24 sandbox" in response.text


def test_handle_is_the_one_core_for_both_modes(sb, portal, rest):
    status, headers, body = sb.handle("POST", f"https://{portal.domain}/rest/user.admin",
                                      {"Content-Type": "application/x-www-form-urlencoded"},
                                      f"auth={rest.token}".encode())
    assert status == 200 and headers["Content-Type"].startswith("application/json") and b'"result":true' in body


def test_demo_status_shows_the_attached_recording_of_a_finished_call(served):
    sb, _inbox, server = served
    portal = sb.create_portal("acme.bitrix24.test")
    sb.install(portal)
    token = sb.issue_token(portal, 1)["access_token"]
    rest = f"{server.portal_url(portal.domain)}/rest"
    call_id = requests.post(f"{rest}/telephony.externalcall.register", json={
        "auth": token, "USER_ID": 2, "PHONE_NUMBER": "+74951112233", "TYPE": 2}, timeout=5).json()["result"]["CALL_ID"]
    requests.post(f"{rest}/telephony.externalcall.finish",
                  json={"auth": token, "CALL_ID": call_id, "USER_ID": 2, "DURATION": 12}, timeout=5)
    attached = requests.post(f"{rest}/telephony.externalcall.attachrecord", json={
        "auth": token, "CALL_ID": call_id, "FILENAME": "talk-with-client.mp3", "FILE_CONTENT": "SUQzAwAAAAAA"}, timeout=5)
    assert "FILE_ID" in attached.json()["result"], attached.text
    status = requests.get(f"{server.base_url}/demo/status", params={"portal": portal.member_id}, timeout=5).text
    assert "talk-with-client.mp3" in status
