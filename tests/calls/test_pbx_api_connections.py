"""Connections and their secrets: management commands, rotation, outbound signing, admin."""

from __future__ import annotations

import base64
import io
import json
import re

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection as db_connection
from pbx_api_fixtures import *  # noqa: F403 (fixtures)
from pbx_api_fixtures import DjangoClientTransport, event, make_portal

from calls.connections.services import outbound_signature_headers, rotate_secret
from calls.models import ConnectionSecret, PbxConnection
from calls.pbx_api import signing
from pbxsim import PbxSimulator
from pbxsim import signing as pbx_signing

pytestmark = pytest.mark.django_db


def run(*args) -> dict:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return json.loads(out.getvalue())


def sim_for(client, connection_id, secret):
    return PbxSimulator("http://testserver", connection_id, secret, transport=DjangoClientTransport(client))


def test_create_command_prints_an_id_and_a_secret_that_authenticates(client):
    portal = make_portal()
    out = run("create_pbx_connection", "--portal", portal.member_id, "--name", "Asterisk",
              "--originate-url", "https://pbx.example.com/originate")
    assert out["secret"].startswith("whsec_")
    assert len(signing.decode_secret(out["secret"])) == 32
    assert re.fullmatch(r"[A-Za-z0-9_-]{20,}", out["connection_id"])
    conn = PbxConnection.objects.get(public_id=out["connection_id"])
    assert (conn.portal, conn.name, conn.is_default, conn.enabled) == (portal, "Asterisk", True, True)
    assert out["events_url"] == f"/api/pbx/v1/connections/{conn.public_id}/events"
    assert sim_for(client, out["connection_id"], out["secret"]).send_events(event(1)).response.status == 202


def test_secret_is_encrypted_at_rest(client):
    portal = make_portal()
    out = run("create_pbx_connection", "--portal", portal.member_id, "--name", "PBX")
    key_b64 = base64.b64encode(signing.decode_secret(out["secret"])).decode()
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT key FROM calls_connectionsecret")
        (raw,) = cursor.fetchone()
    assert key_b64 not in raw
    assert out["secret"] not in raw
    assert ConnectionSecret.objects.get().key == key_b64  # and it decrypts


def test_first_connection_of_a_portal_is_its_default_and_default_can_move():
    portal = make_portal()
    first = run("create_pbx_connection", "--portal", portal.member_id, "--name", "One")
    second = run("create_pbx_connection", "--portal", portal.member_id, "--name", "Two")
    assert (first["is_default"], second["is_default"]) == (True, False)
    third = run("create_pbx_connection", "--portal", portal.member_id, "--name", "Three", "--default")
    assert third["is_default"] is True
    assert list(PbxConnection.objects.filter(is_default=True).values_list("name", flat=True)) == ["Three"]


def test_create_command_refuses_unknown_portal_and_bad_url():
    with pytest.raises(CommandError, match="no portal"):
        run("create_pbx_connection", "--portal", "nope", "--name", "X")
    portal = make_portal()
    with pytest.raises(CommandError, match=r"originate_url|http"):
        run("create_pbx_connection", "--portal", portal.member_id, "--name", "X", "--originate-url", "ftp://x")
    assert not PbxConnection.objects.exists()


def test_rotate_command_issues_a_new_secret_and_keeps_the_old_one_for_the_overlap(tenant, client):
    out = run("rotate_pbx_secret", "--connection", tenant.connection.public_id, "--overlap-hours", "24")
    assert out["secret"] != tenant.secret
    assert len(out["active_secrets"]) == 2
    assert sim_for(client, tenant.connection.public_id, out["secret"]).send_events(event(1)).response.status == 202
    assert tenant.sim.send_events(event(2)).response.status == 202


def test_rotate_command_with_zero_overlap_revokes_the_old_secret(tenant):
    run("rotate_pbx_secret", "--connection", tenant.connection.public_id, "--overlap-hours", "0")
    assert tenant.sim.send_events(event(1)).response.status == 401


def test_rotate_command_refuses_unknown_connection_and_negative_overlap(tenant):
    with pytest.raises(CommandError):
        run("rotate_pbx_secret", "--connection", "nope")
    with pytest.raises(CommandError):
        run("rotate_pbx_secret", "--connection", tenant.connection.public_id, "--overlap-hours", "-1")


def test_outbound_requests_carry_a_signature_for_every_active_secret(tenant):
    new = rotate_secret(tenant.connection).secret
    body = b'{"request_id": "r1"}'
    headers = outbound_signature_headers(tenant.connection.pk, body)
    # A PBX that already has the new secret and one that still has the old one both accept it.
    assert pbx_signing.verify([new], headers, body) is None
    assert pbx_signing.verify([tenant.secret], headers, body) is None
    assert pbx_signing.verify([signing.encode_secret(b"z" * 32)], headers, body) == "no matching signature"


def test_allowed_recording_hosts_are_the_explicit_list_only_not_the_originate_host(tenant):
    tenant.connection.recording_hosts = ["Rec.Example.COM.", " "]
    # Whoever may set the originate URL does not thereby choose where recordings are downloaded from.
    assert tenant.connection.allowed_recording_hosts() == {"rec.example.com"}


def test_recording_credentials_become_an_authorization_header_and_are_encrypted(tenant):
    conn = tenant.connection
    conn.recording_auth = PbxConnection.RecordingAuth.BASIC
    conn.recording_username = "rec"
    conn.recording_secret = "s3cret-pass"
    conn.save()
    conn.refresh_from_db()
    assert conn.recording_auth_headers() == {"Authorization": "Basic " + base64.b64encode(b"rec:s3cret-pass").decode()}
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT recording_secret FROM calls_pbxconnection WHERE id = %s", [conn.pk])
        assert "s3cret-pass" not in cursor.fetchone()[0]
    conn.recording_auth = PbxConnection.RecordingAuth.BEARER
    assert conn.recording_auth_headers() == {"Authorization": "Bearer s3cret-pass"}


# --- admin -------------------------------------------------------------------------------------------


@pytest.fixture
def admin_client(client):
    # No password: force_login needs none, and hashing one costs a second per test.
    user = User.objects.create(username="admin", is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


def test_admin_add_shows_the_new_secret_once_and_never_again(admin_client, client):
    portal = make_portal()
    response = admin_client.post("/admin/calls/pbxconnection/add/", {
        "portal": portal.pk, "name": "FreePBX", "enabled": "on", "originate_url": "https://pbx.example.com/o",
        "recording_auth": "none", "recording_username": "", "recording_hosts": "[]",
        "extension_overrides-TOTAL_FORMS": "0", "extension_overrides-INITIAL_FORMS": "0",
        "secrets-TOTAL_FORMS": "0", "secrets-INITIAL_FORMS": "0",
        "lines-TOTAL_FORMS": "0", "lines-INITIAL_FORMS": "0",
    })
    assert response.status_code == 200, response.content[:2000]
    assert "no-store" in response["Cache-Control"]
    secret = re.search(rb"whsec_[A-Za-z0-9+/=]+", response.content).group().decode()
    conn = PbxConnection.objects.get(name="FreePBX")
    assert conn.is_default
    assert sim_for(client, conn.public_id, secret).send_events(event(1)).response.status == 202
    change_page = admin_client.get(f"/admin/calls/pbxconnection/{conn.pk}/change/")
    assert change_page.status_code == 200
    assert b"whsec_" not in change_page.content
    assert b"rotate_pbx_secret" in change_page.content
    assert base64.b64encode(signing.decode_secret(secret)) not in change_page.content


def test_admin_rotate_action_shows_the_new_secret_and_keeps_the_old_one_valid(admin_client, tenant, client):
    response = admin_client.post("/admin/calls/pbxconnection/", {
        "action": "rotate_signing_secret", "_selected_action": [tenant.connection.pk],
    })
    assert response.status_code == 200
    new = re.search(rb"whsec_[A-Za-z0-9+/=]+", response.content).group().decode()
    assert new != tenant.secret
    assert sim_for(client, tenant.connection.public_id, new).send_events(event(1)).response.status == 202
    assert tenant.sim.send_events(event(2)).response.status == 202


def test_admin_recording_password_is_write_only(admin_client, tenant):
    url = f"/admin/calls/pbxconnection/{tenant.connection.pk}/change/"
    form = {
        "portal": tenant.portal.pk, "name": "Main PBX", "enabled": "on", "is_default": "on",
        "originate_url": tenant.connection.originate_url, "recording_auth": "basic", "recording_username": "rec",
        "new_recording_secret": "pa55word", "recording_hosts": "[]",
        "extension_overrides-TOTAL_FORMS": "0", "extension_overrides-INITIAL_FORMS": "0",
        "secrets-TOTAL_FORMS": "1", "secrets-INITIAL_FORMS": "1",
        "secrets-0-id": tenant.connection.secrets.get().pk, "secrets-0-connection": tenant.connection.pk,
        "lines-TOTAL_FORMS": "0", "lines-INITIAL_FORMS": "0",
    }
    response = admin_client.post(url, form)
    assert response.status_code == 302, response.content[:3000]
    tenant.connection.refresh_from_db()
    assert tenant.connection.recording_secret == "pa55word"
    assert b"pa55word" not in admin_client.get(url).content
    # Saving again without typing it keeps it.
    form["new_recording_secret"] = ""
    admin_client.post(url, form)
    tenant.connection.refresh_from_db()
    assert tenant.connection.recording_secret == "pa55word"
