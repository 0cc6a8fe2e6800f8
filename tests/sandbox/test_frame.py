"""The framed portal page (b24sandbox.frame): the page as Bitrix24 serves it and the portal's backend
behind its postMessage protocol. The browser side (the SDK talking to the page's script) is in
tests/browser/test_sandbox_frame.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from b24sandbox import frame
from b24sandbox.pytest_plugin import AppInbox, make_sandbox
from b24sandbox.sandbox import Sandbox
from b24sandbox.server import SandboxServer


@pytest.fixture
def served() -> Iterator[tuple[Sandbox, AppInbox, SandboxServer]]:
    sb, inbox = make_sandbox()
    server = sb.serve("127.0.0.1", 0)
    try:
        yield sb, inbox, server
    finally:
        server.stop()
    assert not sb.internal_errors, "\n".join(sb.internal_errors)


def _page(server: SandboxServer, **params: str) -> requests.Response:
    return requests.get(f"{server.base_url}/frame/", params=params, timeout=5)


def _frame_parts(html: str) -> tuple[str, str, dict[str, str]]:
    name = unescape(re.search(r'<iframe id="app-frame" name="([^"]+)"', html).group(1))
    action = unescape(re.search(r'<form id="app-form" method="post" action="([^"]+)" target="([^"]+)"', html).group(1))
    target = unescape(re.search(r'<form id="app-form" method="post" action="[^"]+" target="([^"]+)"', html).group(1))
    assert target == name
    fields = {unescape(k): unescape(v) for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html)}
    return name, action, fields


def _call(server: SandboxServer, sid: str, method: str, params: dict | None = None) -> dict:
    response = requests.post(f"{server.base_url}/frame/call", json={"sid": sid, "method": method, "params": params or {}},
                             timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_frame_is_named_host_protocol_sid_in_the_served_html_and_loaded_by_a_split_post(served):
    sb, _inbox, server = served
    portal = sb.create_portal("acme.bitrix24.test", lang="ru")
    sb.install(portal)
    html = _page(server, portal=portal.member_id, user_id="2").text
    name, action, fields = _frame_parts(html)
    host, protocol, sid = name.split("|")
    assert host == server.base_url.split("://", 1)[1] and protocol == "0" and re.fullmatch(r"[0-9a-f]{32}", sid)
    query = {k: v[0] for k, v in parse_qs(urlsplit(action).query).items()}
    assert action.startswith(sb.app.app_url)
    assert set(query) == {"DOMAIN", "PROTOCOL", "LANG", "APP_SID"}
    assert query["APP_SID"] == sid and query["LANG"] == "ru" and query["PROTOCOL"] == "0"
    assert {"AUTH_ID", "AUTH_EXPIRES", "REFRESH_ID", "member_id", "status", "PLACEMENT"} <= set(fields)
    assert not {"DOMAIN", "LANG", "APP_SID"} & set(fields)
    assert fields["member_id"] == portal.member_id and fields["PLACEMENT"] == "DEFAULT"
    assert '<script src="/frame/parent.js"></script>' in html
    assert requests.get(f"{server.base_url}/frame/parent.js", timeout=5).headers["Content-Type"].startswith("text/javascript")


def test_get_init_data_answers_with_the_page_views_tokens_and_clears_first_run(served):
    sb, _inbox, server = served
    portal = sb.create_portal("acme.bitrix24.test")
    sb.install(portal)
    html = _page(server, portal=portal.member_id, user_id="1", lang="en").text
    name, _action, fields = _frame_parts(html)
    sid = name.split("|")[2]
    first = _call(server, sid, "getInitData")
    assert first["reply"] is True
    data = first["result"]
    assert data["DOMAIN"] == server.base_url.split("://", 1)[1] and data["PROTOCOL"] == 0
    assert data["AUTH_ID"] == fields["AUTH_ID"] and data["REFRESH_ID"] == fields["REFRESH_ID"]
    assert isinstance(data["AUTH_EXPIRES"], str) and 3500 < int(data["AUTH_EXPIRES"]) <= 3600
    assert data["MEMBER_ID"] == portal.member_id and data["IS_ADMIN"] is True
    assert data["INSTALL"] is False and data["FIRST_RUN"] is True and data["PLACEMENT"] == "DEFAULT"
    assert data["APP_OPTIONS"] == [] and data["USER_OPTIONS"] == []
    assert _call(server, sid, "getInitData")["result"]["FIRST_RUN"] is False
    # setInstall ends the first run for this user and app version: the next page view is not a first run
    assert _call(server, sid, "setInstall", {"install": True}) == {"reply": True, "result": {"install": True}}
    again = _frame_parts(_page(server, portal=portal.member_id, user_id="1").text)[0].split("|")[2]
    assert _call(server, again, "getInitData")["result"]["FIRST_RUN"] is False
    other_user = _frame_parts(_page(server, portal=portal.member_id, user_id="2").text)[0].split("|")[2]
    assert _call(server, other_user, "getInitData")["result"]["FIRST_RUN"] is True
    sb.update_app(portal)
    new_version = _frame_parts(_page(server, portal=portal.member_id, user_id="1").text)[0].split("|")[2]
    assert _call(server, new_version, "getInitData")["result"]["FIRST_RUN"] is True


def test_an_admin_gets_the_installer_until_install_finish_which_flips_installed_and_reloads(served):
    sb, _inbox, server = served
    portal = sb.create_portal("acme.bitrix24.test")
    start = requests.post(f"{server.base_url}/frame/install", data={"portal": portal.member_id}, timeout=5,
                          allow_redirects=False)
    assert start.status_code == 303 and start.headers["Location"].startswith("/frame/?")
    assert portal.app is not None and portal.app.installed is False
    name, action, _fields = _frame_parts(_page(server, portal=portal.member_id, user_id="1").text)
    assert action.startswith(sb.app.installer_url)
    sid = name.split("|")[2]
    assert _call(server, sid, "getInitData")["result"]["INSTALL"] is True
    # a regular employee sees Bitrix24's notice, not the half-installed app
    regular = _page(server, portal=portal.member_id, user_id="2").text
    assert "id=not-installed" in regular and "<iframe" not in regular
    finished = _call(server, sid, "setInstallFinish")
    assert finished["reply"] is False and "install_finished=Y" in finished["result"]["reload"]
    assert portal.app.installed is True
    _, action, _ = _frame_parts(_page(server, portal=portal.member_id, user_id="2").text)
    assert action.startswith(sb.app.app_url)


def test_install_finish_from_a_view_that_did_not_load_the_installer_changes_nothing(served):
    sb, _inbox, server = served
    portal = sb.create_portal("acme.bitrix24.test")
    sb.install(portal, finish=False)
    portal.app.installed = True
    sid = _frame_parts(_page(server, portal=portal.member_id, user_id="1").text)[0].split("|")[2]
    portal.app.installed = False  # INSTALL was false when this view was rendered
    _call(server, sid, "setInstallFinish")
    assert portal.app.installed is False


def test_app_options_are_for_admins_only_and_user_options_per_user(served):
    sb, _inbox, server = served
    portal = sb.create_portal("acme.bitrix24.test")
    sb.install(portal)
    admin = _frame_parts(_page(server, portal=portal.member_id, user_id="1").text)[0].split("|")[2]
    regular = _frame_parts(_page(server, portal=portal.member_id, user_id="2").text)[0].split("|")[2]
    assert _call(server, admin, "setAppOption", {"name": "theme", "value": 5}) == {"reply": True, "result": {"theme": "5"}}
    assert _call(server, regular, "setAppOption", {"name": "theme", "value": 7}) == {"reply": False, "result": None}
    assert portal.options == {"theme": "5"}
    assert _call(server, regular, "setUserOption", {"name": "tab", "value": "lines"})["reply"] is True
    assert portal.user_options == {2: {"tab": "lines"}}
    again = _frame_parts(_page(server, portal=portal.member_id, user_id="2").text)[0].split("|")[2]
    data = _call(server, again, "getInitData")["result"]
    assert data["USER_OPTIONS"] == {"tab": "lines"} and data["APP_OPTIONS"] == {"theme": "5"}


def test_refresh_auth_hands_the_frame_a_new_working_token(served):
    sb, _inbox, server = served
    portal = sb.create_portal("acme.bitrix24.test")
    sb.install(portal)
    sid = _frame_parts(_page(server, portal=portal.member_id, user_id="3").text)[0].split("|")[2]
    answer = _call(server, sid, "refreshAuth")
    assert answer["reply"] is True and set(answer["result"]) == {"AUTH_ID", "AUTH_EXPIRES", "REFRESH_ID"}
    assert answer["result"]["AUTH_EXPIRES"] == "3600"
    who = requests.post(f"{server.portal_url(portal.domain)}/rest/user.current",
                        json={"auth": answer["result"]["AUTH_ID"]}, timeout=5).json()
    assert who["result"]["ID"] == "3"
    assert _call(server, sid, "getInitData")["result"]["AUTH_ID"] == answer["result"]["AUTH_ID"]


def test_unknown_commands_and_page_views_get_no_answer(served):
    sb, _inbox, server = served
    portal = sb.create_portal("acme.bitrix24.test")
    sb.install(portal)
    sid = _frame_parts(_page(server, portal=portal.member_id).text)[0].split("|")[2]
    assert _call(server, sid, "showAppForm") == {"reply": False}
    gone = requests.post(f"{server.base_url}/frame/call", json={"sid": "f" * 32, "method": "getInitData"}, timeout=5)
    assert gone.status_code == 404


def test_pages_for_unknown_portals_users_and_uninstalled_apps_explain_themselves(served):
    sb, _inbox, server = served
    portal = sb.create_portal("acme.bitrix24.test")
    assert _page(server, portal="nope").status_code == 404
    assert "not installed" in _page(server, portal=portal.member_id).text
    sb.install(portal)
    assert _page(server, portal=portal.member_id, user_id="4").status_code == 404  # dismissed employee


def test_open_path_slider_shows_a_profile_or_a_crm_card(served):
    sb, _inbox, server = served
    portal = sb.create_portal("acme.bitrix24.test", seed="demo")
    sb.install(portal)
    b24jssdk_path = "/crm/type/0/details/0/../../../../../company/personal/user/2/?IFRAME=Y&IFRAME_TYPE=SIDE_SLIDER"
    assert frame.OPEN_PATH_ALLOWED.match(b24jssdk_path)
    assert frame.normalize_open_path(b24jssdk_path) == "/company/personal/user/2/"
    profile = requests.get(f"{server.base_url}/frame/slider", params={"portal": portal.member_id, "path": b24jssdk_path},
                           timeout=5).text
    user = portal.users[2]
    assert f'<h2 id="profile-name">{user.name} {user.last_name}</h2>' in profile
    contact = next(e for e in portal.crm.entities() if e.entity_type == "CONTACT")
    card = requests.get(f"{server.base_url}/frame/slider",
                        params={"portal": portal.member_id, "path": f"/crm/contact/details/{contact.id}/"}, timeout=5).text
    assert 'id="crm-title"' in card and contact.display_name in unescape(card)


def test_the_demo_page_offers_install_and_opening_the_app_as_admin_or_user(served):
    sb, _inbox, server = served
    portal = sb.create_portal("demo.bitrix24.test", seed="demo")
    home = requests.get(server.base_url + "/", timeout=5).text
    assert 'action="/frame/install"' in home
    sb.install(portal)
    home = requests.get(server.base_url + "/", timeout=5).text
    links = frame.frame_links(portal)
    assert unescape(links["admin"]) in unescape(home) and unescape(links["user"]) in unescape(home)
    regular = portal.users[int(parse_qs(urlsplit(links["user"]).query)["user_id"][0])]
    assert not regular.is_admin and regular.active
