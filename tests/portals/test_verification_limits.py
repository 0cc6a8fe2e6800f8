"""Requests only Bitrix24 can vouch for cost an outbound call each: per source address and per claimed
portal they are limited, and past the limit answered 429 with no call made. Genuine ones never run out."""

from __future__ import annotations

import uuid

import pytest
from conftest import DjangoTransport, install_through_ui

from portals.models import Bitrix24Event, Portal, RestCallLog


def _address() -> str:
    """A source address no other test (or earlier run, within the limiter's window) has used."""
    return f"2001:db8::{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"


def _from(source: str) -> DjangoTransport:
    """A browser (or an attacker) at ``source`` talking to the app."""
    transport = DjangoTransport()
    transport.client.defaults["REMOTE_ADDR"] = source
    return transport


def _forged_install(member_id: str) -> dict:
    return {"event": "ONAPPINSTALL", "data": {"VERSION": "1", "LANGUAGE_ID": "ru"},
            "auth": {"access_token": "made-up-token", "refresh_token": "made-up", "member_id": member_id,
                     "application_token": "made-up", "domain": "victim.bitrix24.com",
                     "server_endpoint": "https://oauth.sandbox.test/rest/"}}


def _post_event(client, body: dict, source: str):
    from b24sandbox.phparray import http_build_query

    return client.generic("POST", "/bitrix24/events/", data=http_build_query(body).encode(),
                          content_type="application/x-www-form-urlencoded", secure=True,
                          headers={"host": "app.test"}, REMOTE_ADDR=source)


@pytest.mark.django_db
def test_install_events_for_unknown_portals_from_one_source_stop_costing_calls_past_the_limit(
    sandbox, client, settings
):
    settings.BITRIX24_VERIFY_LIMIT_PER_SOURCE = 5
    attacker = _address()

    answers = [_post_event(client, _forged_install(uuid.uuid4().hex), attacker) for _ in range(8)]

    assert [a.status_code for a in answers] == [403] * 5 + [429] * 3
    assert all(int(a["Retry-After"]) >= 1 for a in answers[5:])
    assert RestCallLog.objects.filter(method__icontains="app.info").count() == 5  # one per checked forgery
    assert not Portal.objects.exists() and not Bitrix24Event.objects.exists()
    # Someone else is not affected by that source's budget.
    assert _post_event(client, _forged_install(uuid.uuid4().hex), _address()).status_code == 403


@pytest.mark.django_db
def test_installer_posts_with_made_up_tokens_for_one_portal_are_limited_whatever_their_source(sandbox, settings):
    settings.BITRIX24_VERIFY_LIMIT_PER_PORTAL = 3
    b24 = sandbox.create_portal("victim.bitrix24.test")
    captured: list[tuple[str, bytes, dict]] = []
    sandbox.page_transport = lambda url, body, headers: captured.append((url, body, headers)) or 200
    sandbox.install_ui(b24)
    url, body, headers = captured[0]
    forged = body.replace(b"AUTH_ID=", b"AUTH_ID=forged")

    statuses = [_from(_address())(url, forged, headers).status_code for _ in range(6)]

    assert statuses == [403] * 3 + [429] * 3
    assert RestCallLog.objects.filter(method__icontains="app.info").count() == 3
    assert not Portal.objects.exists()


@pytest.mark.django_db
def test_genuine_installs_from_one_address_never_run_out(sandbox, settings):
    settings.BITRIX24_VERIFY_LIMIT_PER_SOURCE = 2
    sandbox.event_transport.client.defaults["REMOTE_ADDR"] = _address()  # Bitrix24's one address

    for n in range(5):
        installed = install_through_ui(sandbox, sandbox.create_portal(f"genuine{n}.bitrix24.test"))
        assert installed.portal.status == Portal.Status.ACTIVE

    assert Portal.objects.count() == 5


@pytest.mark.django_db
def test_forged_uninstalls_for_one_portal_stop_costing_calls_past_the_limit(installed_portal, client, settings):
    settings.BITRIX24_VERIFY_WINDOW_SECONDS = 3600  # no window boundary mid-test
    settings.BITRIX24_VERIFY_LIMIT_PER_PORTAL = 2
    portal = installed_portal.portal
    forged = {"event": "ONAPPUNINSTALL", "data": {"CLEAN": "1"},
              "auth": {"member_id": portal.member_id, "application_token": portal.application_token}}
    before = len([e for e in installed_portal.b24.request_log if e["method"] == "app.info"])

    statuses = [_post_event(client, forged, _address()).status_code for _ in range(4)]

    assert statuses == [403, 403, 429, 429]
    asked = len([e for e in installed_portal.b24.request_log if e["method"] == "app.info"]) - before
    assert asked == 2
    assert Bitrix24Event.objects.filter(status="refused").count() == 2
    portal.refresh_from_db()
    assert portal.status == Portal.Status.ACTIVE


def _app_page_post(sandbox, b24) -> tuple[str, bytes, dict]:
    """The app page's POST as Bitrix24 sends it (genuine application token), held back."""
    captured: list[tuple[str, bytes, dict]] = []
    deliver = sandbox.page_transport
    sandbox.page_transport = lambda url, body, headers: captured.append((url, body, headers)) or 200
    try:
        sandbox.open_app(b24, user_id=2)
    finally:
        sandbox.page_transport = deliver
    return captured[0]


def _viewer_checks(portal) -> int:
    """Outbound checks of a viewer's token: the user.current + user.admin batch to the portal."""
    return RestCallLog.objects.filter(portal=portal, method="batch").count()


def _forged_app_page(sandbox, installed_portal) -> tuple[str, bytes, dict, int]:
    """The app page's POST with a made-up AUTH_ID, and the viewer checks made so far."""
    url, body, headers = _app_page_post(sandbox, installed_portal.b24)
    return url, body.replace(b"AUTH_ID=", b"AUTH_ID=forged"), headers, _viewer_checks(installed_portal.portal)


@pytest.mark.django_db
def test_app_page_opens_with_made_up_auth_ids_from_one_source_stop_costing_calls_past_the_limit(
    sandbox, installed_portal, settings
):
    settings.BITRIX24_VERIFY_WINDOW_SECONDS = 3600  # no window boundary mid-test
    settings.BITRIX24_VERIFY_LIMIT_PER_SOURCE = 3
    url, forged, headers, before = _forged_app_page(sandbox, installed_portal)
    attacker = _address()

    answers = [_from(attacker)(url, forged, headers) for _ in range(6)]

    assert [a.status_code for a in answers] == [403] * 3 + [429] * 3
    assert all(int(a["Retry-After"]) >= 1 for a in answers[3:])
    assert _viewer_checks(installed_portal.portal) - before == 3
    # The portal's own users, from elsewhere, still get in.
    url, body, headers = _app_page_post(sandbox, installed_portal.b24)
    assert _from(_address())(url, body, headers).status_code == 200


@pytest.mark.django_db
def test_app_page_opens_with_made_up_auth_ids_for_one_portal_are_limited_whatever_their_source(
    sandbox, installed_portal, settings
):
    settings.BITRIX24_VERIFY_WINDOW_SECONDS = 3600  # no window boundary mid-test
    settings.BITRIX24_VERIFY_LIMIT_PER_PORTAL = 3
    url, forged, headers, before = _forged_app_page(sandbox, installed_portal)

    statuses = [_from(_address())(url, forged, headers).status_code for _ in range(5)]

    assert statuses == [403] * 3 + [429] * 2
    assert _viewer_checks(installed_portal.portal) - before == 3


@pytest.mark.django_db
def test_genuine_app_page_opens_from_one_address_never_run_out(sandbox, installed_portal, settings):
    settings.BITRIX24_VERIFY_WINDOW_SECONDS = 3600  # no window boundary mid-test
    settings.BITRIX24_VERIFY_LIMIT_PER_SOURCE = 2
    settings.BITRIX24_VERIFY_LIMIT_PER_PORTAL = 2
    office = _address()  # the whole office behind one NAT address

    for _ in range(5):
        url, body, headers = _app_page_post(sandbox, installed_portal.b24)
        assert _from(office)(url, body, headers).status_code == 200


@pytest.mark.django_db
def test_session_refreshes_with_made_up_auth_ids_from_one_source_stop_costing_calls_past_the_limit(
    sandbox, installed_portal, client, settings
):
    settings.BITRIX24_VERIFY_WINDOW_SECONDS = 3600  # no window boundary mid-test
    settings.BITRIX24_VERIFY_LIMIT_PER_SOURCE = 3
    before = RestCallLog.objects.filter(method__icontains="app.info").count()
    attacker = _address()

    answers = [client.post("/bitrix24/app/api/v1/session", data={}, content_type="application/json",
                           headers={"host": "app.test", "x-bitrix24-auth": f"forged-{n}"}, REMOTE_ADDR=attacker)
               for n in range(5)]

    assert [a.status_code for a in answers] == [401] * 3 + [429] * 2
    assert all(int(a["Retry-After"]) >= 1 for a in answers[3:])
    assert answers[3].json()["error"] == "throttled"
    assert RestCallLog.objects.filter(method__icontains="app.info").count() - before == 3
