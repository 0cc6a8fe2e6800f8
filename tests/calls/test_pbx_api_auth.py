"""Authentication of every PBX API request: signatures, rotation, replay, connection state, tenants."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from pbx_api_fixtures import *  # noqa: F403 (fixtures)
from pbx_api_fixtures import event

from calls.connections import signing
from calls.connections.services import rotate_secret
from calls.models import PbxEvent, PbxLine, PbxWebhookReceipt
from pbxsim.wav import wav_bytes
from portals.models import Portal

pytestmark = pytest.mark.django_db

LINES = [{"number": "+74951234567", "name": "Sales"}]


def call_endpoint(sim, endpoint: str, **kwargs):
    """One request to each PBX API endpoint, with the given signing knobs."""
    if endpoint == "events":
        return sim.send_events(event(1), **kwargs)
    if endpoint == "recording":
        return sim.upload_recording("call-1", wav_bytes(0.1), **kwargs)
    if endpoint == "lines":
        return sim.put_lines(LINES, **kwargs)
    raise AssertionError(endpoint)


def stored_anything() -> bool:
    return PbxEvent.objects.exists() or PbxLine.objects.exists()


ENDPOINTS = ["events", "recording", "lines"]


@pytest.fixture(autouse=True)
def no_bitrix24_sync(monkeypatch):
    # PUT /lines syncs to Bitrix24; these tests are about the gate in front of it.
    from calls.lines import tasks
    from calls.lines.bitrix24_sync import LineSyncResult

    monkeypatch.setattr(tasks, "sync_lines_to_bitrix24", lambda connection_id: LineSyncResult())


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_correctly_signed_request_is_accepted(tenant, endpoint):
    assert call_endpoint(tenant.sim, endpoint).response.status in (200, 202)
    assert stored_anything()


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_unsigned_request_is_401_and_changes_nothing(tenant, endpoint):
    sent = call_endpoint(tenant.sim, endpoint, sign=False)
    assert sent.response.status == 401
    assert sent.response.json()["error"] == "missing_signature"
    assert "WWW-Authenticate" in sent.response.headers
    assert not stored_anything()


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_wrong_secret_is_401_and_changes_nothing(tenant, endpoint):
    wrong = signing.encode_secret(b"w" * 32)
    sent = call_endpoint(tenant.sim, endpoint, secrets=[wrong])
    assert sent.response.status == 401
    assert sent.response.json()["error"] == "invalid_signature"
    assert not stored_anything()


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_stale_timestamp_is_401_even_with_a_valid_signature(tenant, endpoint):
    sent = call_endpoint(tenant.sim, endpoint, timestamp=int(time.time()) - 6 * 60)
    assert sent.response.status == 401
    assert sent.response.json()["error"] == "stale_timestamp"
    assert not stored_anything()


def test_body_changed_after_signing_is_401(tenant):
    body = json.dumps(event(1)).encode()
    headers = signing.sign_headers([signing.decode_secret(tenant.secret)], body)
    tampered = body.replace(b"101", b"102")
    sent = tenant.sim.request("POST", "events", tampered, sign=False, headers=headers)
    assert sent.response.status == 401
    assert not stored_anything()


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_secret_of_one_connection_never_authenticates_another_connections_url(tenant, other_tenant, endpoint):
    # Tenant B's PBX signs correctly with its own secret but addresses tenant A's connection.
    sent = call_endpoint(tenant.sim, endpoint, secrets=[other_tenant.secret])
    assert sent.response.status == 401
    assert not stored_anything()
    # And the other way round.
    sent = call_endpoint(other_tenant.sim, endpoint, secrets=[tenant.secret])
    assert sent.response.status == 401
    assert not stored_anything()


def test_events_stored_by_one_tenant_are_invisible_to_the_other(tenant, other_tenant):
    tenant.sim.send_events(event(1))
    assert list(PbxEvent.objects.filter(connection=other_tenant.connection)) == []
    assert PbxEvent.objects.get().connection == tenant.connection


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_unknown_connection_is_404(tenant, endpoint):
    tenant.sim.connection_id = "no-such-connection"
    sent = call_endpoint(tenant.sim, endpoint)
    assert sent.response.status == 404
    assert sent.response.json()["error"] == "unknown_connection"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_disabled_connection_is_409(tenant, endpoint):
    tenant.connection.enabled = False
    tenant.connection.save()
    sent = call_endpoint(tenant.sim, endpoint)
    assert sent.response.status == 409
    assert sent.response.json()["error"] == "connection_disabled"
    assert not stored_anything()


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_uninstalled_portal_is_409(tenant, endpoint):
    Portal.objects.filter(pk=tenant.portal.pk).update(status=Portal.Status.UNINSTALLED)
    sent = call_endpoint(tenant.sim, endpoint)
    assert sent.response.status == 409
    assert sent.response.json()["error"] == "portal_uninstalled"
    assert not stored_anything()


def test_disabled_connection_with_a_wrong_signature_is_401_not_409(tenant):
    tenant.connection.enabled = False
    tenant.connection.save()
    sent = call_endpoint(tenant.sim, "events", secrets=[signing.encode_secret(b"w" * 32)])
    assert sent.response.status == 401


def test_portal_with_dead_tokens_still_accepts_events_for_later(tenant):
    Portal.objects.filter(pk=tenant.portal.pk).update(status=Portal.Status.TOKENS_DEAD)
    assert tenant.sim.send_events(event(1)).response.status == 202


# --- rotation ---------------------------------------------------------------------------------


def test_after_rotation_old_and_new_secret_both_work_during_the_overlap(tenant):
    new = rotate_secret(tenant.connection).secret
    assert tenant.sim.send_events(event(1), secrets=[tenant.secret]).response.status == 202
    assert tenant.sim.send_events(event(2), secrets=[new]).response.status == 202
    # A PBX mid-rotation may send both signatures.
    assert tenant.sim.send_events(event(3), secrets=[new, tenant.secret]).response.status == 202


def test_old_secret_is_rejected_once_the_overlap_has_expired(tenant):
    new = rotate_secret(tenant.connection, overlap=timedelta(hours=24)).secret
    # 24 hours later: the old secret's expiry has passed.
    tenant.connection.secrets.exclude(expires_at=None).update(expires_at=timezone.now() - timedelta(seconds=1))
    sent = tenant.sim.send_events(event(1), secrets=[tenant.secret])
    assert sent.response.status == 401
    assert tenant.sim.send_events(event(2), secrets=[new]).response.status == 202
    assert list(PbxEvent.objects.values_list("event_id", flat=True)) == ["evt-2"]


def test_rotation_with_zero_overlap_revokes_the_old_secret_at_once(tenant):
    new = rotate_secret(tenant.connection, overlap=timedelta(0)).secret
    assert tenant.sim.send_events(event(1), secrets=[tenant.secret]).response.status == 401
    assert tenant.sim.send_events(event(1), secrets=[new]).response.status == 202


# --- webhook-id replay rule -------------------------------------------------------------------


def test_repeated_webhook_id_gets_the_first_answer_and_is_not_processed_again(tenant):
    first = tenant.sim.send_events([event(1), event(2)], webhook_id="msg_retry")
    assert first.response.json() == {"accepted": 2, "duplicates": 0}
    # A retry of the same message (new timestamp, new signature, same id and body).
    again = tenant.sim.send_events([event(1), event(2)], webhook_id="msg_retry")
    assert again.response.status == 202
    assert again.response.json() == {"accepted": 2, "duplicates": 0}
    assert PbxEvent.objects.count() == 2


def test_repeated_webhook_id_with_a_different_body_is_not_processed(tenant):
    tenant.sim.send_events(event(1), webhook_id="msg_same")
    again = tenant.sim.send_events(event(9), webhook_id="msg_same")
    assert again.response.status == 202
    assert not PbxEvent.objects.filter(event_id="evt-9").exists()


def test_repeated_webhook_id_of_a_rejected_request_gets_the_same_400(tenant):
    bad = event(1, extension=None)
    first = tenant.sim.send_events(bad, webhook_id="msg_bad")
    again = tenant.sim.send_events(event(1), webhook_id="msg_bad")
    assert first.response.status == again.response.status == 400
    assert again.response.json() == first.response.json()
    assert not PbxEvent.objects.exists()


def test_webhook_id_older_than_24_hours_is_processed_as_new(tenant):
    tenant.sim.send_events(event(1), webhook_id="msg_old")
    PbxWebhookReceipt.objects.update(created_at=PbxWebhookReceipt.objects.get().created_at - timedelta(hours=25))
    again = tenant.sim.send_events(event(2), webhook_id="msg_old")
    assert again.response.json() == {"accepted": 1, "duplicates": 0}
    assert PbxEvent.objects.count() == 2


def test_same_webhook_id_on_two_connections_is_two_messages(tenant, other_tenant):
    assert tenant.sim.send_events(event(1), webhook_id="msg_x").response.json()["accepted"] == 1
    assert other_tenant.sim.send_events(event(1), webhook_id="msg_x").response.json()["accepted"] == 1


def test_unauthenticated_request_does_not_poison_its_webhook_id(tenant):
    assert tenant.sim.send_events(event(1), webhook_id="msg_p", sign=False).response.status == 401
    assert tenant.sim.send_events(event(1), webhook_id="msg_p").response.status == 202


def test_409_is_not_remembered_so_a_retry_after_re_enabling_gets_through(tenant):
    tenant.connection.enabled = False
    tenant.connection.save()
    assert tenant.sim.send_events(event(1), webhook_id="msg_e").response.status == 409
    tenant.connection.enabled = True
    tenant.connection.save()
    assert tenant.sim.send_events(event(1), webhook_id="msg_e").response.status == 202
    assert PbxEvent.objects.count() == 1


def test_retry_of_an_accepted_message_is_still_202_after_the_connection_was_disabled(tenant):
    tenant.sim.send_events(event(1), webhook_id="msg_d")
    tenant.connection.enabled = False
    tenant.connection.save()
    assert tenant.sim.send_events(event(1), webhook_id="msg_d").response.status == 202


def test_repeated_webhook_id_of_an_upload_stores_one_file(tenant, settings, tmp_path):
    settings.RECORDINGS_DIR = tmp_path
    audio = wav_bytes(0.2)
    first = tenant.sim.upload_recording("call-1", audio, webhook_id="msg_up")
    again = tenant.sim.upload_recording("call-1", audio, webhook_id="msg_up")
    assert first.response.status == again.response.status == 202
    assert again.response.json() == first.response.json()
    assert len(list((tmp_path / "uploads").rglob("*.wav"))) == 1
    assert not list((tmp_path / "tmp").iterdir())
