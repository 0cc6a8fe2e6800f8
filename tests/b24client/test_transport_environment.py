"""The client's session reads proxy settings from the environment once per host (b24client.transport):
the proxies and NO_PROXY still apply as requests would apply them."""

from __future__ import annotations

import requests

from b24client.transport import _Session


def test_proxies_and_no_proxy_apply_per_host_as_requests_applies_them(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "direct.bitrix24.test")
    ours, theirs = _Session(), requests.Session()
    for url in ("https://acme.bitrix24.test/rest/profile", "https://direct.bitrix24.test/rest/profile",
                "https://acme.bitrix24.test/rest/user.get"):
        assert ours.merge_environment_settings(url, {}, None, True, None) == \
            theirs.merge_environment_settings(url, {}, None, True, None)
    assert ours.merge_environment_settings("https://acme.bitrix24.test/rest/x", {}, None, True, None)["proxies"][
        "https"] == "http://proxy.example:3128"
    assert ours.merge_environment_settings("https://direct.bitrix24.test/rest/x", {}, None, True, None)[
        "proxies"] == {}


def test_a_caller_changing_the_answer_does_not_change_the_next_one(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    session = _Session()
    first = session.merge_environment_settings("https://acme.bitrix24.test/rest/x", {}, None, True, None)
    first["proxies"]["https"] = "http://elsewhere.example"
    again = session.merge_environment_settings("https://acme.bitrix24.test/rest/x", {}, None, True, None)
    assert again["proxies"]["https"] == "http://proxy.example:3128"
