"""/bitrix24/oauth/start/ redirects a browser only to Bitrix24 portals, never to a host the visitor names."""

from __future__ import annotations

import pytest


@pytest.mark.django_db
@pytest.mark.parametrize("portal", [
    "evil.example",
    "https://evil.example/phish",
    "acme.bitrix24.com.evil.example",
    "bitrix24.com",  # the vendor's site, not a portal
    "a.b.bitrix24.de",
    "acme.bitrix24.test",  # the sandbox's zone is not a real one
    "127.0.0.1",
])
def test_a_host_that_is_not_a_bitrix24_portal_is_refused_without_a_redirect(client, portal):
    response = client.get("/bitrix24/oauth/start/", {"portal": portal})

    assert response.status_code == 400
    assert "Location" not in response
    assert "not a Bitrix24 address" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("portal", ["acme.bitrix24.com", "b24-x1y2z3.bitrix24.ru", "Firma.Bitrix24.DE",
                                    "https://acme.bitrix24.com.br/", "acme.bitrix24.kz"])
def test_cloud_portals_in_every_bitrix24_zone_are_sent_to_their_authorize_page(client, portal):
    response = client.get("/bitrix24/oauth/start/", {"portal": portal})

    assert response.status_code == 302
    host = portal.removeprefix("https://").rstrip("/").lower()
    assert response["Location"].lower().startswith(f"https://{host}/oauth/authorize/?")


@pytest.mark.django_db
def test_an_on_premise_bitrix24_is_a_target_only_when_the_operator_listed_it(client, settings):
    refused = client.get("/bitrix24/oauth/start/", {"portal": "crm.example.org"})
    assert refused.status_code == 400

    settings.BITRIX24_ONPREMISE_HOSTS = ["crm.example.org", "*.intranet.example.net", "b24.example.com:8443"]

    for portal in ("crm.example.org", "bitrix.intranet.example.net", "b24.example.com:8443"):
        response = client.get("/bitrix24/oauth/start/", {"portal": portal})
        assert response.status_code == 302, portal
        assert response["Location"].startswith(f"https://{portal}/oauth/authorize/?")
    assert client.get("/bitrix24/oauth/start/", {"portal": "b24.example.com:9000"}).status_code == 400
    assert client.get("/bitrix24/oauth/start/", {"portal": "evil-intranet.example.net"}).status_code == 400
