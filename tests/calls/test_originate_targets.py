"""Originate URLs get the recordings' SSRF guard: public addresses only (resolved once, the command sent to
that address), https outside development, allow-listed private networks; checked when the URL is set and
when a command is sent. Nothing is sent to an internal address."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from pbx_api_fixtures import make_portal

from calls.connections.services import create_connection
from calls.originate import transport
from calls.pbx_api.signing import encode_secret, generate_secret
from pbxsim.server import SimServer

BODY = {"request_id": "req-1", "kind": "click_to_call", "extension": "101", "client_number": "+79165550123"}
INTERNAL = ["http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:6379/", "http://[::1]:5432/",
            "http://10.0.0.5/originate", "https://[::7f00:1]/originate", "https://[64:ff9b::a9fe:a9fe]/"]


@pytest.fixture
def strict(settings):
    """Production's rules (tests otherwise let commands reach the simulator on 127.0.0.1 over http)."""
    settings.ORIGINATE_ALLOW_PRIVATE_HOSTS = False
    settings.ORIGINATE_ALLOW_HTTP = False


@pytest.mark.parametrize("url", INTERNAL)
def test_a_command_to_an_internal_address_is_refused_and_nothing_is_sent(strict, url):
    outcome = transport.post_originate(url, [generate_secret()], BODY, request_id="req-1", budget_seconds=2)

    assert (outcome.status, outcome.attempts) == ("refused", 0)
    assert "non-public" in outcome.detail or "https" in outcome.detail


def test_plain_http_is_refused_without_the_development_switch(strict, settings):
    settings.ORIGINATE_ALLOWED_PRIVATE_NETWORKS = ["127.0.0.0/8"]
    with SimServer() as pbx:
        secret = generate_secret()
        pbx.add_connection("c1", encode_secret(secret))
        outcome = transport.post_originate(pbx.originate_url("c1"), [secret], BODY, request_id="req-1",
                                           budget_seconds=2)
        assert outcome.status == "refused" and "https" in outcome.detail
        assert pbx.state.commands == []


def test_an_allow_listed_private_network_reaches_an_on_premise_pbx(strict, settings):
    settings.ORIGINATE_ALLOW_HTTP = True  # the simulator speaks http; the address rule is what is tested
    settings.ORIGINATE_ALLOWED_PRIVATE_NETWORKS = ["127.0.0.0/8"]
    with SimServer() as pbx:
        secret = generate_secret()
        pbx.add_connection("c1", encode_secret(secret))
        outcome = transport.post_originate(pbx.originate_url("c1"), [secret], BODY, request_id="req-1",
                                           budget_seconds=2)
    assert outcome.status == "accepted"


@pytest.mark.django_db
@pytest.mark.parametrize("url", INTERNAL)
def test_an_internal_originate_url_cannot_be_set(strict, url):
    with pytest.raises(ValidationError) as info:
        create_connection(portal=make_portal(), name="PBX", originate_url=url)
    assert "originate_url" in info.value.message_dict


@pytest.mark.django_db
def test_a_public_https_originate_url_can_be_set(strict, settings):
    settings.ORIGINATE_ALLOWED_PRIVATE_NETWORKS = []
    issued = create_connection(portal=make_portal(), name="PBX", originate_url="https://93.184.215.14/originate")
    assert issued.connection.originate_url == "https://93.184.215.14/originate"
