"""PBX connections from the app page: create (secret once), change, rotate with overlap, test, check."""

from __future__ import annotations

import pytest
from inportal_fixtures import *  # noqa: F403  (fixtures)
from inportal_fixtures import PbxTransport, call_started

from calls.connections.activity import forget_noted
from calls.connections.services import verification_keys
from calls.models import ConnectionSecret, PbxConnection
from calls.pbx_api import signing
from pbxsim import PbxSimulator, SimServer

pytestmark = pytest.mark.django_db


def test_create_shows_the_events_url_and_the_secret_once(admin_api, installed_portal):
    response = admin_api.post("connections", {"name": "Office PBX", "originate_url": "https://pbx.example.com/orig"})

    assert response.status_code == 201, response.content
    created = response.json()
    connection = PbxConnection.objects.get(public_id=created["id"])
    assert connection.portal == installed_portal.portal and connection.is_default
    assert created["events_url"] == f"https://app.test/api/pbx/v1/connections/{connection.public_id}/events"
    assert created["api_base"] == f"https://app.test/api/pbx/v1/connections/{connection.public_id}/"
    assert created["secret"].startswith("whsec_")
    assert signing.decode_secret(created["secret"]) in verification_keys(connection.pk)
    listed = admin_api.get("connections").json()
    assert [c["id"] for c in listed] == [created["id"]]
    assert "secret" not in listed[0] and created["secret"] not in str(listed)
    assert admin_api.get(f"connections/{created['id']}").json()["first_signed_request_at"] is None


def test_bad_input_names_the_field_and_creates_nothing(admin_api, installed_portal):
    cases = [
        ({"name": "  "}, "name"),
        ({}, "name"),
        ({"name": "X", "originate_url": "ftp://pbx.example.com/"}, "originate_url"),
        ({"name": "X", "originate_url": "not a url"}, "originate_url"),
        ({"name": "X", "recording": {"auth": "digest"}}, "recording.auth"),
        ({"name": "X", "recording": {"hosts": ["bad host!"]}}, "recording.hosts"),
        ({"name": "X" * 201}, "name"),
    ]
    for body, field in cases:
        response = admin_api.post("connections", body)
        assert response.status_code == 400, (body, response.content)
        data = response.json()
        assert data["error"] == "invalid" and field in data["fields"], (body, data)
    assert not PbxConnection.objects.exists()


def test_patch_changes_what_was_sent_and_keeps_the_recording_secret_write_only(admin_api):
    cid = admin_api.post("connections", {"name": "PBX"}).json()["id"]

    response = admin_api.patch(f"connections/{cid}", {
        "name": "Main office", "enabled": False, "originate_url": "https://pbx.example.com/originate",
        "recording": {"auth": "basic", "username": "rec", "secret": "s3cr3t-pass", "hosts": ["rec.example.com"]},
    })

    assert response.status_code == 200, response.content
    data = response.json()
    assert (data["name"], data["enabled"], data["originate_url"]) == (
        "Main office", False, "https://pbx.example.com/originate")
    assert data["recording"] == {"auth": "basic", "username": "rec", "secret_set": True, "hosts": ["rec.example.com"]}
    assert "s3cr3t-pass" not in response.content.decode()
    connection = PbxConnection.objects.get(public_id=cid)
    assert connection.recording_secret == "s3cr3t-pass"
    assert connection.recording_auth_headers()["Authorization"].startswith("Basic ")
    # A partial change leaves the rest alone; a bad one changes nothing.
    admin_api.patch(f"connections/{cid}", {"enabled": True})
    bad = admin_api.patch(f"connections/{cid}", {"name": "", "enabled": False})
    assert bad.status_code == 400 and "name" in bad.json()["fields"]
    connection.refresh_from_db()
    assert (connection.name, connection.enabled, connection.recording_secret) == ("Main office", True, "s3cr3t-pass")


def test_the_default_moves_but_cannot_be_dropped(admin_api, installed_portal):
    first = admin_api.post("connections", {"name": "A"}).json()["id"]
    second = admin_api.post("connections", {"name": "B"}).json()["id"]

    assert admin_api.patch(f"connections/{first}", {"is_default": False}).status_code == 400
    assert admin_api.patch(f"connections/{second}", {"is_default": True}).json()["is_default"] is True

    defaults = PbxConnection.objects.filter(portal=installed_portal.portal, is_default=True)
    assert list(defaults.values_list("public_id", flat=True)) == [second]
    third = admin_api.post("connections", {"name": "C", "is_default": True}).json()
    assert third["is_default"] is True
    assert list(defaults.values_list("public_id", flat=True)) == [third["id"]]


def test_rotate_returns_a_new_secret_and_the_old_one_works_during_the_overlap(admin_api):
    created = admin_api.post("connections", {"name": "PBX"}).json()
    old = signing.decode_secret(created["secret"])

    response = admin_api.post(f"connections/{created['id']}/rotate", {"overlap_hours": 2})

    assert response.status_code == 200, response.content
    rotated = response.json()
    new = signing.decode_secret(rotated["secret"])
    connection = PbxConnection.objects.get(public_id=created["id"])
    assert verification_keys(connection.pk) == [new, old]
    assert rotated["previous_valid_until"] is not None
    assert len(rotated["connection"]["secrets"]) == 2
    bad = admin_api.post(f"connections/{created['id']}/rotate", {"overlap_hours": -1})
    assert bad.status_code == 400 and "overlap_hours" in bad.json()["fields"]
    assert ConnectionSecret.objects.filter(connection=connection).count() == 2


def test_a_test_command_reaches_the_pbx_signed_and_places_no_call(admin_api, settings):
    with SimServer() as pbx:
        created = admin_api.post("connections", {"name": "PBX"}).json()
        cid = created["id"]
        pbx.add_connection(cid, created["secret"], mode="accept", app_url="https://app.test")
        admin_api.patch(f"connections/{cid}", {"originate_url": pbx.originate_url(cid)})

        response = admin_api.post(f"connections/{cid}/test")

        assert response.status_code == 200, response.content
        result = response.json()
        assert result["ok"] is True and result["outcome"] == "accepted"
        [command] = pbx.state.commands
        assert command.verified and command.body["kind"] == "test" and command.body["request_id"]
        assert command.placed_call_id is None and not pbx.state.played
        assert admin_api.get(f"connections/{cid}/check").json()["last_test"]["ok"] is True

        pbx.state.connections[cid].mode = "refuse"
        refused = admin_api.post(f"connections/{cid}/test").json()
        assert (refused["ok"], refused["outcome"], refused["http_status"]) == (False, "refused", 404)


def test_a_test_without_an_originate_url_says_so(admin_api):
    cid = admin_api.post("connections", {"name": "PBX"}).json()["id"]

    result = admin_api.post(f"connections/{cid}/test").json()

    assert (result["ok"], result["outcome"]) == (False, "no_originate_url")


def test_check_says_when_the_pbx_first_and_last_signed_a_request(admin_api):
    forget_noted()
    created = admin_api.post("connections", {"name": "PBX"}).json()
    cid = created["id"]
    assert admin_api.get(f"connections/{cid}/check").json()["seen"] is False
    forged = PbxSimulator("https://app.test", cid, "whsec_" + "A" * 44, transport=PbxTransport())
    assert forged.send_events(call_started(1)).response.status == 401
    assert admin_api.get(f"connections/{cid}/check").json()["seen"] is False

    sim = PbxSimulator("https://app.test", cid, created["secret"], transport=PbxTransport())
    answer = sim.send_events(call_started(1))
    assert answer.response.status == 202, answer.response.body
    sim.send_events(call_started(2))

    check = admin_api.get(f"connections/{cid}/check").json()
    assert check["seen"] is True
    assert check["first_signed_request_at"] == check["last_signed_request_at"]  # kept to the minute
    assert admin_api.get("connections").json()[0]["first_signed_request_at"] is not None
