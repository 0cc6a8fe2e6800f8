"""The sandbox's portal page answers the real JS SDK (@bitrix24/b24jssdk, from frontend/node_modules) the way
Bitrix24 does. The "app" here is a bare page on another site that loads the SDK's UMD build, so the
parent side is tested alone; tests/browser/test_app_*.py run the product's pages in the same frame."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from b24sandbox import frame as sandbox_frame
from b24sandbox.clock import RealClock
from b24sandbox.sandbox import Sandbox
from browser.browser_fixtures import FRONTEND, app_frame

SDK = FRONTEND / "node_modules" / "@bitrix24" / "b24jssdk" / "dist" / "umd" / "index.min.js"
APP_PAGE = b"""<!doctype html><html><head><meta charset=utf-8><title>test app</title></head>
<body style="margin:0"><div id=content style="height:300px">test app</div>
<script src="/sdk.js"></script>
<script>
window.ready = B24Js.initializeB24Frame().then(function (b24) { window.$b24 = b24; return true; });
window.settle = function (promise, ms) {
  return Promise.race([promise, new Promise(function (r) { setTimeout(function () { r("pending"); }, ms); })]);
};
</script></body></html>"""


class _AppHandler(BaseHTTPRequestHandler):
    posted: list[tuple[str, bytes]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/sdk.js":
            self._send(SDK.read_bytes(), "text/javascript")
        elif self.path == "/favicon.ico":
            self._send(b"", "image/x-icon")
        else:
            self._send(APP_PAGE, "text/html; charset=utf-8")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        type(self).posted.append((self.path, self.rfile.read(length)))
        self._send(APP_PAGE, "text/html; charset=utf-8")


@pytest.fixture
def portal_page() -> Iterator[tuple[Sandbox, str, type[_AppHandler]]]:
    if not SDK.exists():
        pytest.fail(f"{SDK} is missing: run npm ci in frontend/")
    handler = type("Handler", (_AppHandler,), {"posted": []})
    app_server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=app_server.serve_forever, daemon=True).start()
    app = f"http://localhost:{app_server.server_address[1]}"  # another site than the portal's 127.0.0.1
    sb = Sandbox(clock=RealClock(), allow_http=True)
    sb.register_app("local.frame-test", "secret", app_url=f"{app}/app/", installer_url=f"{app}/install/")
    server = sb.serve("127.0.0.1", 0)
    try:
        yield sb, server.base_url, handler
    finally:
        server.stop()
        app_server.shutdown()
    assert not sb.internal_errors, "\n".join(sb.internal_errors)


def _open(open_page: Any, base: str, portal: Any, user_id: int = 1, **query: str) -> tuple[Any, Any]:
    watched = open_page()
    params = "&".join(f"{k}={v}" for k, v in {"portal": portal.member_id, "user_id": user_id, **query}.items())
    watched.page.goto(f"{base}/frame/?{params}")
    inner = app_frame(watched.page)
    inner.wait_for_function("() => window.$b24 !== undefined", timeout=15_000)
    return watched.page, inner


def test_the_sdk_initialises_from_the_frame_name_and_the_init_data(open_page, portal_page):
    sb, base, handler = portal_page
    portal = sb.create_portal("acme.bitrix24.test", lang="ru")
    sb.install(portal)
    page, inner = _open(open_page, base, portal, user_id=2)
    info = inner.evaluate("""() => ({lang: $b24.getLang(), admin: $b24.auth.isAdmin, install: $b24.isInstallMode,
        first: $b24.isFirstRun, token: $b24.auth.getAuthData().access_token, placement: $b24.placement.placement,
        origin: $b24.getTargetOrigin(), name: window.name})""")
    host = base.split("://", 1)[1]
    assert info["name"].startswith(f"{host}|0|") and info["origin"] == base
    assert info["lang"] == "ru" and info["admin"] is False and info["install"] is False
    assert info["placement"] == "DEFAULT" and info["first"] is True
    path, body = handler.posted[-1]
    assert path.startswith("/app/?DOMAIN=") and f"AUTH_ID={info['token']}".encode() in body
    # the SDK ended the first run with setInstall, which the portal stored for this user
    page.wait_for_function("() => window.__frameLog.some(e => e.method === 'setInstall' && e.replied)")
    assert (2, portal.app.version) in portal.app.first_runs


def test_resize_and_fit_change_the_frames_box(open_page, portal_page):
    sb, base, _ = portal_page
    portal = sb.create_portal("acme.bitrix24.test")
    sb.install(portal)
    page, inner = _open(open_page, base, portal)
    answer = inner.evaluate("() => $b24.parent.resizeWindow(640, 777)")
    assert answer == {"width": 640, "height": 777}
    assert page.eval_on_selector("#app-frame", "f => [f.offsetWidth, f.offsetHeight]") == [640, 777]
    inner.evaluate("() => { document.getElementById('content').style.height = '1500px'; }")
    inner.evaluate("() => $b24.parent.fitWindow()")
    assert page.eval_on_selector("#app-frame", "f => f.offsetHeight") == 1500
    assert page.eval_on_selector("#app-frame", "f => f.style.width") == "100%"


def test_the_user_picker_answers_with_the_chosen_employee_and_is_silent_when_closed(open_page, portal_page):
    sb, base, _ = portal_page
    portal = sb.create_portal("acme.bitrix24.test")
    sb.install(portal)
    page, inner = _open(open_page, base, portal)
    inner.evaluate("() => { window.pick = $b24.dialog.selectUser(); }")
    page.wait_for_selector("#user-picker li[data-user-id='3']")
    assert page.locator("#user-picker li[data-user-id='4']").count() == 0  # dismissed employees are not offered
    page.fill("#user-picker-search", "clara")
    page.click("#user-picker li[data-user-id='3']")
    chosen = inner.evaluate("() => window.pick")
    assert chosen["id"] == "3" and chosen["name"] == "Clara Agent" and chosen["url"] == "/company/personal/user/3/"
    inner.evaluate("() => { window.pick2 = $b24.dialog.selectUser(); }")
    page.click("#user-picker-cancel")
    assert inner.evaluate("() => settle(window.pick2, 1500)") == "pending"
    inner.evaluate("() => { window.many = $b24.dialog.selectUsers(); }")
    page.click("#user-picker li[data-user-id='2']")
    page.click("#user-picker li[data-user-id='5']")
    page.click("#user-picker-select")
    assert sorted(u["id"] for u in inner.evaluate("() => window.many")) == ["2", "5"]


def test_app_options_are_admin_only_and_user_options_are_kept(open_page, portal_page):
    sb, base, _ = portal_page
    portal = sb.create_portal("acme.bitrix24.test")
    sb.install(portal)
    _page, admin = _open(open_page, base, portal, user_id=1)
    admin.evaluate("() => $b24.options.appSet('theme', 'dark')")
    assert portal.options == {"theme": "dark"}
    _page2, regular = _open(open_page, base, portal, user_id=2)
    regular.evaluate("() => $b24.options.appSet('theme', 'light')")
    regular.evaluate("() => $b24.options.userSet('tab', 'lines')")
    assert portal.options == {"theme": "dark"} and portal.user_options == {2: {"tab": "lines"}}


def test_refresh_auth_brings_a_new_token_that_works_on_the_portal(open_page, portal_page):
    sb, base, _ = portal_page
    portal = sb.create_portal("acme.bitrix24.test")
    sb.install(portal)
    _page, inner = _open(open_page, base, portal, user_id=3)
    old = inner.evaluate("() => $b24.auth.getAuthData().access_token")
    new = inner.evaluate("() => $b24.auth.refreshAuth().then(a => a.access_token)")
    assert new != old
    who = requests.post(f"{base}/portal/{portal.domain}/rest/user.current", json={"auth": new}, timeout=5).json()
    assert who["result"]["ID"] == "3"


def test_open_path_shows_the_profile_in_a_slider_and_answers_when_it_closes(open_page, portal_page):
    sb, base, _ = portal_page
    portal = sb.create_portal("acme.bitrix24.test")
    sb.install(portal)
    page, inner = _open(open_page, base, portal)
    inner.evaluate("() => { window.opened = $b24.slider.openPath($b24.slider.getUrl('/company/personal/user/2/')); }")
    slider = page.wait_for_selector("#slider-frame").content_frame()
    slider.wait_for_selector("#profile-name")
    assert slider.inner_text("#profile-name") == "Boris Agent"
    assert inner.evaluate("() => settle(window.opened, 300)") == "pending"
    page.click("#slider-close")
    assert inner.evaluate("() => window.opened") == {"isOpenAtNewWindow": False, "isClose": True}


def test_install_finish_marks_the_app_installed_and_the_portal_reloads_into_the_app(open_page, portal_page):
    sb, base, handler = portal_page
    portal = sb.create_portal("acme.bitrix24.test")
    watched = open_page()
    page = watched.page
    page.goto(f"{base}/")
    page.click("form[action='/frame/install'] button")
    inner = app_frame(page)
    inner.wait_for_function("() => window.$b24 !== undefined")
    assert handler.posted[-1][0].startswith("/install/?") and inner.evaluate("() => $b24.isInstallMode") is True
    assert portal.app is not None and portal.app.installed is False
    with page.expect_navigation(url=lambda url: "install_finished=Y" in url):
        inner.evaluate("() => { $b24.installFinish(); }")
    assert portal.app.installed is True
    inner = app_frame(page)
    inner.wait_for_function("() => window.$b24 !== undefined")
    assert handler.posted[-1][0].startswith("/app/?") and inner.evaluate("() => $b24.isInstallMode") is False


def test_messages_with_another_app_sid_or_from_another_origin_are_ignored(open_page, portal_page):
    sb, base, _ = portal_page
    portal = sb.create_portal("acme.bitrix24.test")
    sb.install(portal)
    page, inner = _open(open_page, base, portal)
    before = page.evaluate("() => window.__frameLog.length")
    inner.evaluate("() => parent.postMessage('getInitData:cb1:' + 'f'.repeat(32), '*')")
    page.evaluate("() => window.postMessage('getInitData:cb2:' + JSON.parse("
                  "document.getElementById('frame-config').textContent).sid, '*')")
    page.wait_for_timeout(300)
    assert page.evaluate("() => window.__frameLog.length") == before
    # and a known command with the right sid still works
    assert inner.evaluate("() => $b24.parent.setTitle('Telephony')") == {"title": "Telephony"}
    assert page.inner_text("#pagetitle") == "Telephony"


def test_a_regular_employee_sees_the_not_installed_notice_until_the_admin_finishes(open_page, portal_page):
    sb, base, _ = portal_page
    portal = sb.create_portal("acme.bitrix24.test")
    sb.install(portal, finish=False)
    watched = open_page()
    watched.page.goto(f"{base}/frame/?portal={portal.member_id}&user_id=2")
    assert "not fully installed" in watched.page.inner_text("#not-installed")
    assert watched.page.query_selector("#app-frame") is None
    assert sandbox_frame.sessions_for(sb, portal.member_id) == []



def test_the_harness_catches_console_errors_and_exceptions_inside_the_frame(open_page, portal_page):
    """The "no console errors" checks of every browser test rely on this."""
    sb, base, _ = portal_page
    portal = sb.create_portal("acme.bitrix24.test")
    sb.install(portal)
    watched = open_page()
    watched.page.goto(f"{base}/frame/?portal={portal.member_id}&user_id=1")
    inner = app_frame(watched.page)
    inner.wait_for_function("() => window.$b24 !== undefined")
    inner.evaluate("() => { console.error('provoked'); setTimeout(() => { throw new Error('provoked boom'); }); }")
    watched.page.wait_for_timeout(300)
    assert any("provoked" in p and "console error" in p for p in watched.problems)
    assert any("provoked boom" in p and "uncaught" in p for p in watched.problems)
    watched.allow_console("provoked")
