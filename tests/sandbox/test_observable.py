"""What every portal holds is readable from tests (issue: "Observable"), tenants stay apart, and the
sandbox is usable from the command line."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests
from sandbox_fixtures import *  # noqa: F403  (fixtures)

from b24sandbox.pytest_plugin import RestCaller

ROOT = Path(__file__).resolve().parents[2]
HANDLER = "https://app.example.test/b24/events/"


def test_request_log_records_every_call_without_the_token(sb, portal, rest):
    rest.call("user.get", {"filter": {"UF_PHONE_INNER": "101"}})
    rest.call("no.such.method")
    last, failed = portal.request_log[-2], portal.request_log[-1]
    assert last["method"] == "user.get" and last["status"] == 200 and last["user_id"] == 1
    assert last["params"] == {"filter": {"UF_PHONE_INNER": "101"}, "auth": "***"}
    assert failed["status"] == 404 and failed["error"] == "ERROR_METHOD_NOT_FOUND"
    assert rest.token not in repr(portal.request_log)


def test_snapshot_shows_calls_cards_lines_bindings_and_deliveries(sb, portal, rest, inbox):
    rest.result("event.bind", {"event": "ONEXTERNALCALLSTART", "handler": HANDLER})
    rest.result("telephony.externalline.add", {"NUMBER": "74950000001", "NAME": "Office"})
    registered = rest.result("telephony.externalcall.register",
                             {"USER_ID": 2, "PHONE_NUMBER": "+74951234567", "TYPE": 2, "SHOW": 1,
                              "LINE_NUMBER": "74950000001"})
    sb.click_to_call(portal, 3, "+74957654321")
    snap = sb.snapshot(portal)
    assert snap["member_id"] == portal.member_id and snap["app"]["installed"] is True
    assert [line["number"] for line in snap["telephony"]["lines"]] == ["74950000001"]
    assert snap["telephony"]["calls"][0]["call_id"] == registered["CALL_ID"]
    assert portal.cards_visible(registered["CALL_ID"]) == {2}
    assert snap["event_bindings"][0]["event"] == "ONEXTERNALCALLSTART"
    assert snap["deliveries"][-1]["event"] == "ONEXTERNALCALLSTART" and snap["deliveries"][-1]["status"] == 200
    assert any(e["method"] == "telephony.externalcall.register" for e in snap["request_log"])


def test_portals_keep_their_own_users_calls_and_options(sb, portal, rest, inbox):
    other = sb.create_portal("other.bitrix24.test", seed="demo")
    sb.install(other)
    other_rest = RestCaller(sb, other, inbox.pages()[-1].flat["AUTH_ID"])
    rest.result("app.option.set", {"options": {"owner": "acme"}})
    rest.result("telephony.externalcall.register", {"USER_ID": 2, "PHONE_NUMBER": "+74951234567", "TYPE": 2})
    assert other_rest.result("app.option.get", {"option": "owner"}) is None
    assert other.telephony.calls == {} and len(portal.telephony.calls) == 1
    assert other_rest.call("user.get").json()["total"] == 62
    assert other.member_id != portal.member_id and sb.portal(other.member_id) is other
    assert sb.portal("other.bitrix24.test") is other


def test_cli_serves_the_demo_portal_with_the_app_registered_from_env(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BITRIX24_CLIENT_ID": "local.cli-app",
           "BITRIX24_CLIENT_SECRET": "cli-secret"}
    port = 18000 + os.getpid() % 1000
    process = subprocess.Popen(
        [sys.executable, "-m", "b24sandbox", "serve", "--port", str(port), "--app-url", "http://127.0.0.1:9",
         "--seed", "demo", "--rng-seed", "3"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                page = requests.get(base + "/", timeout=1)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        assert "demo.bitrix24.test" in page.text and "local.cli-app" in page.text
        token = requests.get(f"{base}/oauth/oauth/token/", params={
            "grant_type": "refresh_token", "client_id": "local.cli-app", "client_secret": "wrong",
            "refresh_token": "x"}, timeout=2)
        assert token.status_code == 401 and token.json()["error"] == "invalid_client"
    finally:
        process.terminate()
        process.wait(timeout=10)
