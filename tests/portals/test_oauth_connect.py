"""Connecting a portal from outside Bitrix24 with the OAuth authorization-code flow."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from conftest import install_through_ui

from portals.install import BOUND_EVENTS
from portals.models import Portal, PortalCredential
from portals.services import bitrix24_client_for


def _sign_in(client, portal_address: str) -> str:
    """Start at our page, let the (sandbox) Bitrix24 authorize, return our callback path+query."""
    start = client.get("/bitrix24/oauth/start/", {"portal": portal_address})
    assert start.status_code == 302
    authorize = requests.get(start["Location"], allow_redirects=False, timeout=5)
    assert authorize.status_code == 302, authorize.text
    back = urlsplit(authorize.headers["Location"])
    assert back.path == "/bitrix24/oauth/callback/"
    return f"{back.path}?{back.query}"


@pytest.mark.django_db
def test_connecting_from_outside_bitrix24_stores_the_portal_and_binds_events(sandbox, client):
    b24 = sandbox.create_portal("acme.bitrix24.test")
    sandbox.page_transport = lambda url, body, headers: 200  # installed in Bitrix24; our server never saw it
    sandbox.install_ui(b24)
    sandbox.install_finish(b24)

    start = client.get("/bitrix24/oauth/start/", {"portal": "acme.bitrix24.test"})
    query = parse_qs(urlsplit(start["Location"]).query)
    assert start["Location"].startswith("https://acme.bitrix24.test/oauth/authorize/")
    assert query["client_id"] == ["local.sandbox-app"] and query["state"][0]
    assert "client_secret" not in start["Location"]

    response = client.get(_sign_in(client, "acme.bitrix24.test"))

    assert response.status_code == 200, response.content.decode()
    portal = Portal.objects.get(member_id=b24.member_id)
    assert portal.status == Portal.Status.ACTIVE
    assert portal.client_endpoint == "https://acme.bitrix24.test/rest/"
    assert PortalCredential.objects.filter(portal=portal).exists()
    assert {b.event for b in b24.event_bindings} == set(BOUND_EVENTS)
    assert bitrix24_client_for(portal.pk).call("profile").result["ID"]


@pytest.mark.django_db
def test_reconnecting_revives_a_portal_whose_tokens_died(sandbox, installed_portal, client):
    portal = installed_portal.portal
    sandbox.clock.advance(181 * 86400)
    Portal.objects.filter(pk=portal.pk).update(status=Portal.Status.TOKENS_DEAD, dead_reason="invalid_grant")

    response = client.get(_sign_in(client, portal.domain))

    assert response.status_code == 200
    portal.refresh_from_db()
    assert (portal.status, portal.dead_reason) == (Portal.Status.ACTIVE, "")
    assert portal.application_token == installed_portal.b24.app.application_token  # kept from the install
    assert bitrix24_client_for(portal.pk).call("profile").result["ID"]


@pytest.mark.django_db
def test_a_callback_with_a_foreign_state_is_refused_and_stores_nothing(sandbox, client):
    b24 = sandbox.create_portal("acme.bitrix24.test")
    sandbox.page_transport = lambda url, body, headers: 200
    sandbox.install_ui(b24)
    callback = _sign_in(client, "acme.bitrix24.test")
    other_browser = type(client)()

    response = other_browser.get(callback)  # a link planted in someone else's browser

    assert response.status_code == 400
    assert not Portal.objects.exists()


@pytest.mark.django_db
def test_a_code_can_be_used_only_once(sandbox, client):
    b24 = sandbox.create_portal("acme.bitrix24.test")
    sandbox.page_transport = lambda url, body, headers: 200
    sandbox.install_ui(b24)
    callback = _sign_in(client, "acme.bitrix24.test")
    assert client.get(callback).status_code == 200
    session = client.session
    session["b24_oauth_state"] = parse_qs(urlsplit(callback).query)["state"][0]
    session.save()

    replay = client.get(callback)

    assert replay.status_code == 400


@pytest.mark.django_db
@pytest.mark.parametrize("address", ["", "javascript:alert(1)", "http://acme.bitrix24.test", "acme.bitrix24.test/x?y=1"])
def test_connect_start_refuses_what_is_not_a_bitrix24_address(client, address):
    response = client.get("/bitrix24/oauth/start/", {"portal": address} if address else {})

    assert response.status_code in (200, 400)  # the form again, with an error for non-empty input
    assert not response.has_header("Location")
    if address:
        assert response.status_code == 400


@pytest.mark.django_db
def test_installer_flow_and_connect_flow_land_on_the_same_tenant(sandbox, client):
    b24 = sandbox.create_portal("acme.bitrix24.test")
    installed = install_through_ui(sandbox, b24)

    client.get(_sign_in(client, "acme.bitrix24.test"))

    assert Portal.objects.count() == 1
    assert Portal.objects.get().pk == installed.portal.pk
