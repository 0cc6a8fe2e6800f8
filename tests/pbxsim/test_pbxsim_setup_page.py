"""The simulated PBX's connector settings page: a person pastes the events URL and secret the app's wizard
showed, the PBX proves them with its first signed request, and shows back its command URL."""

from __future__ import annotations

import pytest
import requests

from calls.connections.services import create_connection
from calls.models import PbxLine
from pbxsim import SimServer
from portals.models import Portal

pytestmark = pytest.mark.django_db(transaction=True)


def _connection():
    portal = Portal.objects.create(member_id="setup-1", domain="setup.bitrix24.test",
                                   client_endpoint="https://setup.bitrix24.test/rest/", status=Portal.Status.ACTIVE)
    return create_connection(portal=portal, name="Main PBX")


def test_pasting_the_wizards_values_pairs_the_pbx_and_declares_its_line(live_server):
    issued = _connection()
    events_url = f"{live_server.url}/api/pbx/v1/connections/{issued.connection.public_id}/events"
    paired = []
    with SimServer(line_number="+74990000001", line_name="Office", on_pair=paired.append) as pbx:
        form = requests.get(f"{pbx.base_url}/", timeout=5).text
        assert 'name=events_url' in form and 'name=secret' in form
        answer = requests.post(f"{pbx.base_url}/connect", data={"events_url": events_url, "secret": issued.secret},
                               timeout=10)
        assert answer.status_code == 200, answer.text
        assert pbx.originate_url(issued.connection.public_id) in answer.text
        assert [p.connection_id for p in paired] == [issued.connection.public_id]
        assert pbx.state.connections[issued.connection.public_id].app_url == live_server.url
    line = PbxLine.objects.get(connection=issued.connection)
    assert line.number.endswith("74990000001")


def test_a_wrong_secret_or_url_is_refused_on_the_page_and_nothing_is_paired(live_server):
    issued = _connection()
    events_url = f"{live_server.url}/api/pbx/v1/connections/{issued.connection.public_id}/events"
    with SimServer() as pbx:
        wrong_secret = requests.post(f"{pbx.base_url}/connect",
                                     data={"events_url": events_url, "secret": "whsec_" + "A" * 32}, timeout=10)
        assert wrong_secret.status_code == 400 and "check the secret" in wrong_secret.text
        not_a_url = requests.post(f"{pbx.base_url}/connect", data={"events_url": "https://example.test/x",
                                                                   "secret": issued.secret}, timeout=10)
        assert not_a_url.status_code == 400 and "/api/pbx/v1/connections/" in not_a_url.text
        assert pbx.state.connections == {} and pbx.state.pairings == {}
    assert not PbxLine.objects.filter(connection=issued.connection).exists()
