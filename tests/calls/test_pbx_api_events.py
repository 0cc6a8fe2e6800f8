"""POST /api/pbx/v1/connections/{id}/events: validation, durability, duplicates."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings
from pbx_api_fixtures import *  # noqa: F403 (fixtures)
from pbx_api_fixtures import event, make_tenant

from calls.models import PbxEvent

pytestmark = pytest.mark.django_db


def started(n=1, **fields):
    values = {"direction": "inbound", "client_number": "+7 (916) 555-01-23", "line_number": "84951234567"}
    return event(n, type="call.started", **{**values, **fields})


def test_one_event_object_is_stored_and_answered_202(tenant):
    sent = tenant.sim.send_events(started())
    assert sent.response.status == 202
    assert sent.response.json() == {"accepted": 1, "duplicates": 0}
    stored = PbxEvent.objects.get()
    assert (stored.connection, stored.event_id, stored.type, stored.call_id) == (
        tenant.connection, "evt-1", "call.started", "call-1"
    )
    assert stored.status == PbxEvent.Status.PENDING
    assert stored.webhook_id == sent.webhook_id
    assert stored.payload["client_number"] == "+7 (916) 555-01-23"


def test_occurred_at_keeps_the_pbx_time_and_offset(tenant):
    tenant.sim.send_events(started(occurred_at="2025-03-01T12:00:05+03:00"))
    stored = PbxEvent.objects.get()
    assert stored.occurred_at.isoformat() == "2025-03-01T09:00:05+00:00"
    assert stored.payload["occurred_at"] == "2025-03-01T12:00:05+03:00"


def test_batch_of_100_events_is_accepted(tenant):
    sent = tenant.sim.send_events([event(n) for n in range(100)])
    assert sent.response.status == 202
    assert sent.response.json() == {"accepted": 100, "duplicates": 0}
    assert PbxEvent.objects.count() == 100


def test_batch_of_101_events_is_rejected_and_nothing_is_stored(tenant):
    sent = tenant.sim.send_events([event(n) for n in range(101)])
    assert sent.response.status == 400
    body = sent.response.json()
    assert body["error"] == "invalid_body"
    assert "100" in body["detail"]
    assert PbxEvent.objects.count() == 0


def test_one_invalid_event_rejects_the_batch_naming_index_and_field(tenant):
    events = [event(1), event(2), event(3, type="call.answered", extension=None), event(4)]
    sent = tenant.sim.send_events(events)
    assert sent.response.status == 400
    body = sent.response.json()
    assert body["error"] == "invalid_event"
    assert "2.extension" in body["fields"]
    assert body["detail"].startswith("Event 2 is invalid: extension")
    assert PbxEvent.objects.count() == 0


def test_every_invalid_event_of_a_batch_is_reported(tenant):
    events = [event(1, type="call.exploded"), event(2), event(3, occurred_at="yesterday")]
    body = tenant.sim.send_events(events).response.json()
    assert set(body["fields"]) == {"0.type", "2.occurred_at"}
    assert "1 more invalid event" in body["detail"]


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        ({"occurred_at": "2025-03-01T12:00:00"}, "occurred_at"),  # no offset
        ({"occurred_at": "2025-03-01"}, "occurred_at"),
        ({"event_id": "x" * 129}, "event_id"),
        ({"call_id": ""}, "call_id"),
        ({"direction": "sideways"}, "direction"),
        ({"direction": "outbound"}, "extension"),  # outbound needs the agent who dials
    ],
)
def test_call_started_field_rules(tenant, fields, bad_field):
    body = tenant.sim.send_events(started(**fields)).response.json()
    assert bad_field in body["fields"], body
    assert PbxEvent.objects.count() == 0


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        ({"disposition": "exploded"}, "disposition"),
        ({"talk_seconds": -1}, "talk_seconds"),
        ({"vote": 6}, "vote"),
        ({"currency": "rub"}, "currency"),
        ({"cost": "1,20"}, "cost"),
        ({"sip_code": 99}, "sip_code"),
    ],
)
def test_call_ended_field_rules(tenant, fields, bad_field):
    ended = event(1, type="call.ended", disposition="answered", talk_seconds=10)
    ended.update(fields)
    body = tenant.sim.send_events(ended).response.json()
    assert bad_field in body["fields"], body


def test_call_ended_with_all_optional_fields_is_accepted(tenant):
    ended = event(1, type="call.ended", disposition="busy", talk_seconds=0, sip_code=486, cost="0.35",
                  currency="RUB", failed_reason="User busy", vote=3)
    assert tenant.sim.send_events(ended).response.status == 202


def test_recording_url_must_be_https_on_an_allowed_host(tenant):
    def rec(url):
        return event(1, type="call.recording_ready", url=url, filename="a.wav", content_type="audio/wav")

    allowed = tenant.sim.send_events(rec("https://pbx.tenant-a.example/rec/1.wav"))
    assert allowed.response.status == 202
    other_host = tenant.sim.send_events(rec("https://169.254.169.254/latest/meta-data")).response.json()
    assert "url" in other_host["fields"]
    assert "not allowed" in other_host["fields"]["url"][0]
    with override_settings(RECORDINGS_ALLOW_HTTP=False):
        plain = tenant.sim.send_events(rec("http://pbx.tenant-a.example/rec/1.wav")).response.json()
    assert "https" in plain["fields"]["url"][0]


def test_recording_url_is_refused_when_the_connection_allows_no_host(client):
    bare = make_tenant(client)  # no originate URL, no recording hosts
    sent = bare.sim.send_events(event(1, type="call.recording_ready", url="https://pbx.example/r.wav",
                                      filename="r.wav", content_type="audio/wav"))
    assert sent.response.status == 400
    assert "no recording hosts" in sent.response.json()["fields"]["url"][0]


def test_recording_hosts_may_be_wildcards_and_ports(tenant):
    tenant.connection.recording_hosts = ["*.cdn.pbx-vendor.example", "files.pbx-vendor.example:8443"]
    tenant.connection.save()

    def status(url):
        return tenant.sim.send_events(event(1, type="call.recording_ready", url=url, filename="a.wav",
                                            content_type="audio/wav", event_id=url)).response.status

    assert status("https://eu.cdn.pbx-vendor.example/a.wav") == 202
    assert status("https://files.pbx-vendor.example:8443/a.wav") == 202
    assert status("https://files.pbx-vendor.example/a.wav") == 400
    assert status("https://cdn.pbx-vendor.example/a.wav") == 400


def test_explicit_recording_hosts_extend_the_allowed_list(tenant):
    tenant.connection.recording_hosts = ["storage.pbx-vendor.example"]
    tenant.connection.save()
    sent = tenant.sim.send_events(
        event(1, type="call.recording_ready", url="https://storage.pbx-vendor.example/x.mp3", filename="x.mp3",
              content_type="audio/mpeg", size_bytes=10, sha256="a" * 64)
    )
    assert sent.response.status == 202


def test_repeated_event_id_counts_as_duplicate_and_is_stored_once(tenant):
    assert tenant.sim.send_events([event(1), event(2)]).response.json() == {"accepted": 2, "duplicates": 0}
    again = tenant.sim.send_events([event(2), event(3)])
    assert again.response.json() == {"accepted": 1, "duplicates": 1}
    assert sorted(PbxEvent.objects.values_list("event_id", flat=True)) == ["evt-1", "evt-2", "evt-3"]


def test_same_event_id_twice_in_one_batch_is_one_event_and_one_duplicate(tenant):
    assert tenant.sim.send_events([event(1), event(1)]).response.json() == {"accepted": 1, "duplicates": 1}


def test_same_event_id_on_two_connections_is_two_events(tenant, other_tenant):
    assert tenant.sim.send_events(event(1)).response.json()["accepted"] == 1
    assert other_tenant.sim.send_events(event(1)).response.json()["accepted"] == 1
    assert PbxEvent.objects.count() == 2


def test_unknown_fields_are_kept_for_the_state_machine(tenant):
    tenant.sim.send_events(event(1, queue_name="Support", pbx_vendor_data={"a": 1}))
    assert PbxEvent.objects.get().payload["queue_name"] == "Support"


@pytest.mark.parametrize(
    ("body", "code"),
    [(b"{not json", "invalid_json"), (b'"a string"', "invalid_body"), (b"[]", "invalid_body"),
     (b'{"event_id": NaN}', "invalid_json"), (b"[1, 2]", "invalid_event")],
)
def test_malformed_bodies_are_400_with_a_code(tenant, body, code):
    sent = tenant.sim.request("POST", "events", body)
    assert sent.response.status == 400
    assert sent.response.json()["error"] == code
    assert set(sent.response.json()) == {"error", "detail", "fields"}
    assert PbxEvent.objects.count() == 0


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=10_000)
def test_body_over_the_size_limit_is_413_and_nothing_is_stored(tenant):
    events = [event(n, padding="x" * 200) for n in range(60)]
    sent = tenant.sim.send_events(events)
    assert sent.response.status == 413
    assert sent.response.json()["error"] == "too_large"
    assert PbxEvent.objects.count() == 0


def test_new_events_kick_their_portals_pump_after_commit_and_duplicates_do_not(tenant, monkeypatch,
                                                                              django_capture_on_commit_callbacks):
    from calls.sync import pump, shards
    from calls.sync.tasks import run_pump

    enqueued: list[tuple[int, int]] = []
    monkeypatch.setattr(run_pump, "delay", lambda *args: enqueued.append(args))  # the broker's side of the queue
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        tenant.sim.send_events([event(1), event(2)])
    assert enqueued == []  # nothing is queued before the commit
    for callback in callbacks:
        callback()
    portal_id = tenant.connection.portal_id
    shard = shards.shard_of(shards.slot_of(tenant.connection.pk, "call-1"), pump.pump_settings().shards)
    assert enqueued == [(portal_id, shard)]  # one message for the call's shard of the pump, not one per event
    with django_capture_on_commit_callbacks(execute=True):
        tenant.sim.send_events(event(3))
    assert enqueued == [(portal_id, shard)]  # its pump has not run yet: that message will apply this event too
    pump.drop_kick(portal_id, shard)  # the pump ran and let go
    with django_capture_on_commit_callbacks(execute=True):
        tenant.sim.send_events([event(1), event(2)])
    assert enqueued == [(portal_id, shard)]  # duplicates only: nothing new to apply


def test_event_json_with_unicode_is_stored_as_sent(tenant):
    body = json.dumps(event(1, type="call.ended", disposition="failed", talk_seconds=0,
                            failed_reason="Абонент недоступен"), ensure_ascii=False).encode()
    assert tenant.sim.request("POST", "events", body).response.status == 202
    assert PbxEvent.objects.get().payload["failed_reason"] == "Абонент недоступен"
