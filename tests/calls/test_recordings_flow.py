"""A recording through the whole product: PBX upload -> inbox -> call state machine -> Bitrix24.

The state machine decides when to attach; this checks the recording pipeline's side of that
contract: a recording that arrives before the call ends waits, and lands right after the finish.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pbx_api_fixtures import DjangoClientTransport

from calls.connections.services import create_connection
from calls.models import Call, OutboxCommand, PbxEvent
from calls.outbox import packing
from calls.sync import reconciler
from pbxsim import PbxSimulator
from pbxsim.wav import wav_bytes

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def quick_settle(settings, tmp_path):
    settings.RECORDINGS_DIR = tmp_path / "recordings"
    settings.CALLS_FINISH_SETTLE_SECONDS = 0
    settings.CALLS_ANSWER_WAIT_SECONDS = 0


def deliver_pending() -> Call:
    """What the realtime and bulk tasks do, run inline: apply every stored event, then sync."""
    call_pks = set()
    for pk in PbxEvent.objects.filter(status=PbxEvent.Status.PENDING).order_by("pk").values_list("pk", flat=True):
        call_pk = reconciler.apply_pbx_event(pk)
        if call_pk:
            call_pks.add(call_pk)
    for call_pk in call_pks:
        reconciler.reconcile(call_pk, allow_slow=True)
    return Call.objects.get(pk=call_pks.pop())


def at(seconds: int) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def test_uploaded_recording_waits_for_the_finish_and_then_lands_byte_for_byte(installed_portal, client):
    issued = create_connection(portal=installed_portal.portal, name="PBX")
    sim = PbxSimulator("http://testserver", issued.connection.public_id, issued.secret,
                       transport=DjangoClientTransport(client))
    source = wav_bytes(2)

    sim.send_events([
        {"event_id": "e1", "type": "call.started", "call_id": "c1", "occurred_at": at(0), "direction": "inbound",
         "client_number": "+7 495 123-45-67", "line_number": "+74950000000", "extension": "101"},
        {"event_id": "e2", "type": "call.answered", "call_id": "c1", "occurred_at": at(5), "extension": "101"},
    ])
    assert sim.upload_recording("c1", source, content_type="audio/wav").response.status == 202
    call = deliver_pending()
    b24 = installed_portal.b24.telephony
    assert call.b24_call_id and call.recording_attached_at is None
    assert b24.recordings.get(call.b24_call_id) is None  # the call is live: nothing attached yet

    sim.send_events([{"event_id": "e3", "type": "call.ended", "call_id": "c1", "occurred_at": at(65),
                      "disposition": "answered", "talk_seconds": 60}])
    call = deliver_pending()

    stored = b24.recordings.get(call.b24_call_id)
    assert stored is not None and stored.content == source
    assert call.recording_attached_at is not None and call.recording_key.startswith("upload:")
    ops = [h["op"] for h in b24.calls[call.b24_call_id].history]
    assert ops.index("record") > max(i for i, op in enumerate(ops) if op.startswith("finish"))


def _answered_call_with_its_recording_stored(installed_portal, client) -> Call:
    """An answered call's events applied and its recording uploaded by the PBX: what is left is the recording."""
    issued = create_connection(portal=installed_portal.portal, name="PBX")
    sim = PbxSimulator("http://testserver", issued.connection.public_id, issued.secret,
                       transport=DjangoClientTransport(client))
    sim.send_events([
        {"event_id": "e1", "type": "call.started", "call_id": "c1", "occurred_at": at(0), "direction": "inbound",
         "client_number": "+7 495 123-45-67", "line_number": "+74950000000", "extension": "101"},
        {"event_id": "e2", "type": "call.answered", "call_id": "c1", "occurred_at": at(5), "extension": "101"},
        {"event_id": "e3", "type": "call.ended", "call_id": "c1", "occurred_at": at(65),
         "disposition": "answered", "talk_seconds": 60},
    ])
    assert sim.upload_recording("c1", wav_bytes(1), content_type="audio/wav").response.status == 202
    for pk in PbxEvent.objects.filter(status=PbxEvent.Status.PENDING).order_by("pk").values_list("pk", flat=True):
        reconciler.apply_pbx_event(pk)
    return Call.objects.get(pbx_call_id="c1")


def test_a_recording_upload_waits_while_the_portals_outbox_has_commands_due(installed_portal, client):
    """Uploads are two unbatched requests of the portal's few a second: cards, registers and finishes go first."""
    call = _answered_call_with_its_recording_stored(installed_portal, client)
    assert reconciler.reconcile(call.pk).outcome == "slow_step"  # finished; the recording is the bulk task's
    call.refresh_from_db()
    assert call.finished_at is not None and call.recording_attached_at is None
    # Another call's work is due on this portal (a burst in progress).
    other = OutboxCommand.objects.create(portal=installed_portal.portal, key="other-work", method="user.get",
                                         kind=OutboxCommand.Kind.HOUSEKEEPING, params={},
                                         priority=packing.PRIORITY_HOUSEKEEPING)

    waited = reconciler.reconcile(call.pk, allow_slow=True)

    call.refresh_from_db()
    assert waited.outcome == "retry" and waited.delay >= 2
    assert call.recording_attached_at is None and call.attempts == 0  # waiting is no failure
    assert installed_portal.b24.telephony.recordings.get(call.b24_call_id) is None

    other.status = OutboxCommand.Status.DONE
    other.save()
    assert reconciler.reconcile(call.pk, allow_slow=True).outcome == "idle"
    call.refresh_from_db()
    assert call.recording_attached_at is not None
    assert installed_portal.b24.telephony.recordings.get(call.b24_call_id) is not None


def test_a_recording_waits_without_a_download_while_the_portals_request_bucket_is_spent(installed_portal, client):
    """The batches of a burst take the portal's requests: the attachRecord could not go, so the recording is not
    fetched (and fetched again on every try) meanwhile; the wait is no failure."""
    from portals.services import bitrix24_client_for

    call = _answered_call_with_its_recording_stored(installed_portal, client)
    assert reconciler.reconcile(call.pk).outcome == "slow_step"
    other_requests = bitrix24_client_for(installed_portal.portal.pk)
    while other_requests.request_wait() == 0:
        other_requests.take_request_slot("the portal's other requests")
    log_before = len(installed_portal.b24.request_log)

    waited = reconciler.reconcile(call.pk, allow_slow=True)

    call.refresh_from_db()
    assert waited.outcome == "retry" and waited.delay >= 5
    assert call.recording_attached_at is None and call.attempts == 0 and not call.recording_error
    assert installed_portal.b24.request_log[log_before:] == []  # no attachRecord tried
