"""attach_recording end to end: PBX (pbxsim server or an uploaded file) -> Bitrix24 (in-process sandbox)."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
import subprocess
from datetime import UTC, datetime

import pytest
from django.utils import timezone

from calls.connections.services import create_connection
from calls.models import Call, PbxConnection, PbxEvent
from calls.recordings import CallNotFinished, SourceRefused, UnsupportedFormat, UploadFailed
from calls.recordings.services import deliver_recording
from calls.recordings.upload import upload_recording
from pbxsim.server import RecordingPolicy, SimServer
from pbxsim.wav import wav_bytes
from portals.models import RestCallLog
from portals.services import bitrix24_client_for

pytestmark = pytest.mark.django_db

FFMPEG = shutil.which("ffmpeg")


@pytest.fixture(autouse=True)
def recordings_dir(settings, tmp_path):
    settings.RECORDINGS_DIR = tmp_path / "recordings"
    return settings.RECORDINGS_DIR


@pytest.fixture
def pbx():
    # The recording server of tenant A's PBX: a real HTTP server on loopback.
    with SimServer("127.0.0.1") as server:
        server.state.recordings = RecordingPolicy(auth=("basic", "tenant-a", "pw-a"))
        yield server


@pytest.fixture
def private_ok(settings):
    settings.RECORDINGS_ALLOW_PRIVATE_HOSTS = True
    settings.RECORDINGS_ALLOW_HTTP = True


def connection_for(portal, *, name="PBX A", hosts=("127.0.0.1",), user="tenant-a", password="pw-a") -> PbxConnection:
    conn = create_connection(portal=portal, name=name, recording_hosts=list(hosts)).connection
    conn.recording_auth = PbxConnection.RecordingAuth.BASIC
    conn.recording_username = user
    conn.recording_secret = password
    conn.save()
    return conn


def bitrix24_call(installed, *, finish: bool = True) -> str:
    client = bitrix24_client_for(installed.portal.pk)
    admin = installed.b24.admin().id
    call_id = client.call("telephony.externalcall.register", {
        "USER_ID": admin, "PHONE_NUMBER": "+74951234567", "TYPE": 2, "SHOW": 0,
        "CALL_START_DATE": "2025-03-01T09:00:00+00:00", "CRM_CREATE": 0,
    }).result["CALL_ID"]
    if finish:
        client.call("telephony.externalcall.finish", {
            "CALL_ID": call_id, "USER_ID": admin, "DURATION": 30, "STATUS_CODE": "200", "ADD_TO_CHAT": 0,
        })
    return call_id


def make_call(installed, conn, *, b24_call_id, finished=True, pbx_call_id="pbx-1") -> Call:
    return Call.objects.create(
        portal=installed.portal, connection=conn, pbx_call_id=pbx_call_id, b24_call_id=b24_call_id,
        direction="inbound", client_number="+74951234567", started_at=datetime(2025, 3, 1, 9, 0, tzinfo=UTC),
        finished_at=timezone.now() if finished else None, status=Call.Status.DONE if finished else Call.Status.LIVE,
    )


def recording_event(conn, *, event_id="rec-1", call_id="pbx-1", **payload) -> PbxEvent:
    body = {"event_id": event_id, "type": "call.recording_ready", "call_id": call_id,
            "occurred_at": "2025-03-01T09:05:00+00:00", "filename": "rec.wav", "content_type": "audio/wav", **payload}
    return PbxEvent.objects.create(connection=conn, event_id=event_id, type="call.recording_ready", call_id=call_id,
                                   occurred_at=datetime(2025, 3, 1, 9, 5, tzinfo=UTC), payload=body,
                                   status=PbxEvent.Status.PROCESSED)


def stored(installed, b24_call_id):
    return installed.b24.telephony.recordings.get(b24_call_id)


def uploaded_file(recordings_dir, conn, data: bytes, suffix=".wav") -> str:
    rel = f"uploads/{conn.public_id}/upload{suffix}"
    path = recordings_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return rel


def test_recording_from_the_pbx_url_arrives_in_bitrix24_byte_for_byte(installed_portal, pbx, private_ok,
                                                                       recordings_dir):
    conn = connection_for(installed_portal.portal)
    b24_call_id = bitrix24_call(installed_portal)
    call = make_call(installed_portal, conn, b24_call_id=b24_call_id)
    source = wav_bytes(3)
    recording_event(conn, url=f"{pbx.base_url}/recordings/a.wav?seconds=3",
                    sha256=hashlib.sha256(source).hexdigest(), size_bytes=len(source))

    outcome = deliver_recording(call_pk=call.pk, event_id="rec-1")

    got = stored(installed_portal, b24_call_id)
    assert got is not None and got.content == source
    assert got.source == "uploadUrl"
    assert got.filename == outcome.filename
    assert outcome.filename.startswith("2025-03-01_09-00-00_inbound_74951234567_") and outcome.filename.endswith(".wav")
    assert outcome.event_id == "rec-1" and outcome.size_bytes == len(source) and outcome.file_id == got.file_id
    assert list((recordings_dir / "tmp").iterdir()) == []  # the download was cleaned up


def test_uploaded_recording_is_attached_from_its_local_file_and_kept(installed_portal, recordings_dir):
    conn = connection_for(installed_portal.portal, hosts=())
    b24_call_id = bitrix24_call(installed_portal)
    call = make_call(installed_portal, conn, b24_call_id=b24_call_id)
    source = wav_bytes(2)
    rel = uploaded_file(recordings_dir, conn, source)
    recording_event(conn, url=None, local_path=rel, sha256=hashlib.sha256(source).hexdigest())

    deliver_recording(call_pk=call.pk)

    assert stored(installed_portal, b24_call_id).content == source
    assert (recordings_dir / rel).read_bytes() == source


def test_attach_refuses_clearly_while_the_bitrix24_call_is_not_finished(installed_portal, recordings_dir):
    conn = connection_for(installed_portal.portal)
    b24_call_id = bitrix24_call(installed_portal, finish=False)
    call = make_call(installed_portal, conn, b24_call_id=b24_call_id, finished=False)
    recording_event(conn, url=None, local_path=uploaded_file(recordings_dir, conn, wav_bytes(1)))

    with pytest.raises(CallNotFinished) as err:
        deliver_recording(call_pk=call.pk)
    assert err.value.retryable and "finished" in err.value.reason
    assert not any(e["method"] == "telephony.externalcall.attachrecord" for e in _log(installed_portal))
    assert stored(installed_portal, b24_call_id) is None


def test_bitrix24_saying_the_call_is_not_finished_is_retryable(installed_portal, recordings_dir):
    conn = connection_for(installed_portal.portal)
    b24_call_id = bitrix24_call(installed_portal, finish=False)
    # Our row believes the finish happened; Bitrix24 does not have it: retry later, never give up here.
    call = make_call(installed_portal, conn, b24_call_id=b24_call_id, finished=True)
    recording_event(conn, url=None, local_path=uploaded_file(recordings_dir, conn, wav_bytes(1)))

    with pytest.raises(CallNotFinished) as err:
        deliver_recording(call_pk=call.pk)
    assert err.value.retryable and err.value.retry_after
    assert stored(installed_portal, b24_call_id) is None


def test_ogg_recording_is_converted_and_attached_as_mp3(installed_portal, recordings_dir):
    if FFMPEG is None:
        if os.environ.get("CI"):
            pytest.fail("ffmpeg is not installed on the CI machine")
        pytest.skip("ffmpeg is not installed here")
    conn = connection_for(installed_portal.portal)
    b24_call_id = bitrix24_call(installed_portal)
    call = make_call(installed_portal, conn, b24_call_id=b24_call_id)
    ogg = recordings_dir / "src.ogg"
    ogg.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([FFMPEG, "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=2",
                    "-c:a", "libvorbis", str(ogg)], check=True)
    rel = uploaded_file(recordings_dir, conn, ogg.read_bytes(), suffix=".ogg")
    recording_event(conn, url=None, local_path=rel, content_type="audio/ogg", filename="rec.ogg")

    outcome = deliver_recording(call_pk=call.pk)

    got = stored(installed_portal, b24_call_id)
    assert outcome.converted_from == "audio/ogg"
    assert got.filename.endswith(".mp3") and got.content[:3] in (b"ID3", b"\xff\xfb", b"\xff\xf3")


def test_without_a_converter_an_ogg_recording_fails_with_a_reason_and_uploads_nothing(
        installed_portal, recordings_dir, settings):
    settings.RECORDINGS_FFMPEG = str(recordings_dir / "no-such-ffmpeg")
    conn = connection_for(installed_portal.portal)
    b24_call_id = bitrix24_call(installed_portal)
    call = make_call(installed_portal, conn, b24_call_id=b24_call_id)
    rel = uploaded_file(recordings_dir, conn, b"OggS\x00\x02" + bytes(500), suffix=".ogg")
    recording_event(conn, url=None, local_path=rel, content_type="audio/ogg", filename="rec.ogg")

    with pytest.raises(UnsupportedFormat) as err:
        deliver_recording(call_pk=call.pk)
    assert not err.value.retryable
    assert "recording format audio/ogg is not supported and no converter is installed" in err.value.reason
    assert stored(installed_portal, b24_call_id) is None


def test_the_upload_token_never_reaches_logs_or_the_rest_log(installed_portal, recordings_dir, caplog):
    caplog.set_level(logging.DEBUG)
    conn = connection_for(installed_portal.portal)
    b24_call_id = bitrix24_call(installed_portal)
    call = make_call(installed_portal, conn, b24_call_id=b24_call_id)
    recording_event(conn, url=None, local_path=uploaded_file(recordings_dir, conn, wav_bytes(1)))

    deliver_recording(call_pk=call.pk)

    token = installed_portal.portal.credential.access_token
    upload_entries = [e for e in _log(installed_portal) if e["method"].endswith("(upload)")]
    assert len(upload_entries) == 1 and upload_entries[0]["status"] == 200
    assert "upload.json" in upload_entries[0]["url"]
    assert token not in repr(list(RestCallLog.objects.values()))
    assert token not in caplog.text
    assert "upload.json" in caplog.text  # the upload was logged, just without its token


def test_wrong_extension_from_bitrix24_is_permanent_with_its_reason(installed_portal, recordings_dir):
    b24_call_id = bitrix24_call(installed_portal)
    src = recordings_dir / "a.wav"
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_bytes(wav_bytes(1))
    client = bitrix24_client_for(installed_portal.portal.pk)
    # Bitrix24 compares extensions case-sensitively: "WAV" is refused at the upload step.
    with pytest.raises(UploadFailed) as err:
        upload_recording(client, b24_call_id=b24_call_id, path=src, filename="call.WAV", mime="audio/wav",
                         session=client.session)
    assert not err.value.retryable
    assert "Wrong file extension" in err.value.reason


def test_bitrix24_server_errors_at_attach_are_retryable(installed_portal, sandbox, recordings_dir):
    conn = connection_for(installed_portal.portal)
    b24_call_id = bitrix24_call(installed_portal)
    call = make_call(installed_portal, conn, b24_call_id=b24_call_id)
    recording_event(conn, url=None, local_path=uploaded_file(recordings_dir, conn, wav_bytes(1)))
    sandbox.faults.add("error500", portal=installed_portal.b24, method="telephony.externalcall.attachrecord")

    with pytest.raises(UploadFailed) as err:
        deliver_recording(call_pk=call.pk)
    assert err.value.retryable
    assert stored(installed_portal, b24_call_id) is None
    assert deliver_recording(call_pk=call.pk).size_bytes > 0  # the retry goes through
    assert stored(installed_portal, b24_call_id) is not None


def test_a_second_attach_replaces_rather_than_duplicates(installed_portal, recordings_dir):
    conn = connection_for(installed_portal.portal)
    b24_call_id = bitrix24_call(installed_portal)
    call = make_call(installed_portal, conn, b24_call_id=b24_call_id)
    recording_event(conn, url=None, local_path=uploaded_file(recordings_dir, conn, wav_bytes(1)))
    first = deliver_recording(call_pk=call.pk)
    second = deliver_recording(call_pk=call.pk)
    # A retry after a lost answer re-sends under the same name, and Bitrix24 keeps only the latest.
    assert first.filename == second.filename
    assert stored(installed_portal, b24_call_id).file_id == second.file_id != first.file_id


# --- tenant isolation ---------------------------------------------------------------------------

def test_a_connection_never_sends_its_credentials_to_another_tenants_host(installed_portal, pbx, private_ok,
                                                                          recordings_dir):
    with SimServer("127.0.0.2") as other_pbx:
        conn_a = connection_for(installed_portal.portal, name="PBX A", hosts=("127.0.0.1",))
        conn_b = connection_for(installed_portal.portal, name="PBX B", hosts=("127.0.0.2",),
                                user="tenant-b", password="pw-b")
        b24_a, b24_b = bitrix24_call(installed_portal), bitrix24_call(installed_portal)
        call_a = make_call(installed_portal, conn_a, b24_call_id=b24_a, pbx_call_id="a-1")
        call_b = make_call(installed_portal, conn_b, b24_call_id=b24_b, pbx_call_id="b-1")
        recording_event(conn_a, call_id="a-1", event_id="ra", url=f"{other_pbx.base_url}/recordings/x.wav?seconds=1")
        recording_event(conn_b, call_id="b-1", event_id="rb", url=f"{other_pbx.base_url}/recordings/y.wav?seconds=1")

        with pytest.raises(SourceRefused, match="not in this connection's allowed recording hosts"):
            deliver_recording(call_pk=call_a.pk)
        deliver_recording(call_pk=call_b.pk)

        auth_seen = [r["headers"].get("Authorization") for r in other_pbx.state.recording_requests]
        assert len(auth_seen) == 1
        assert base64.b64decode(auth_seen[0].split()[1]) == b"tenant-b:pw-b"
        assert stored(installed_portal, b24_a) is None and stored(installed_portal, b24_b) is not None


def test_an_uploaded_file_of_another_connection_is_refused(installed_portal, recordings_dir):
    conn_a = connection_for(installed_portal.portal, name="PBX A")
    conn_b = connection_for(installed_portal.portal, name="PBX B")
    b24_call_id = bitrix24_call(installed_portal)
    call = make_call(installed_portal, conn_b, b24_call_id=b24_call_id)
    rel_a = uploaded_file(recordings_dir, conn_a, wav_bytes(1))
    recording_event(conn_b, url=None, local_path=rel_a)
    recording_event(conn_b, url=None, local_path="../../etc/passwd", event_id="rec-2")

    with pytest.raises(SourceRefused, match="does not belong to this connection"):
        deliver_recording(call_pk=call.pk, event_id="rec-1")
    with pytest.raises(SourceRefused, match="does not belong to this connection"):
        deliver_recording(call_pk=call.pk, event_id="rec-2")
    assert stored(installed_portal, b24_call_id) is None


def _log(installed):
    return list(RestCallLog.objects.filter(portal=installed.portal).values("method", "url", "status"))


def test_an_upload_url_outside_the_portals_origin_is_not_posted_to(installed_portal, recordings_dir):
    b24_call_id = bitrix24_call(installed_portal)
    src = recordings_dir / "a.wav"
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_bytes(wav_bytes(1))
    client = bitrix24_client_for(installed_portal.portal.pk)
    with pytest.raises(UploadFailed, match="outside the portal's own address"):
        upload_recording(client, b24_call_id=b24_call_id, path=src, filename="a.wav", mime="audio/wav",
                         session=client.session, expected_origin="https://other-portal.bitrix24.test")
    assert stored(installed_portal, b24_call_id) is None
    assert not any(e["method"].endswith("(upload)") for e in _log(installed_portal))


def test_the_upload_post_takes_a_request_from_the_portals_budget(installed_portal, recordings_dir):
    # docs/bitrix24-contract.md §3.1: Bitrix24 counts the upload POST like any REST request. A budget of
    # three is spent by register, finish and attachRecord's first step; the upload must wait, not be sent.
    from b24client.coordination import MemoryBackend

    client = bitrix24_client_for(installed_portal.portal.pk)
    client.limiter, client.capacity, client.drain = MemoryBackend(), 3, 0.001  # an empty bucket of three
    admin = installed_portal.b24.admin().id
    b24_call_id = client.call("telephony.externalcall.register", {
        "USER_ID": admin, "PHONE_NUMBER": "+74951234567", "TYPE": 2, "SHOW": 0, "CRM_CREATE": 0,
    }).result["CALL_ID"]
    client.call("telephony.externalcall.finish", {"CALL_ID": b24_call_id, "USER_ID": admin, "DURATION": 30})
    src = recordings_dir / "a.wav"
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_bytes(wav_bytes(1))
    with pytest.raises(UploadFailed) as err:
        upload_recording(client, b24_call_id=b24_call_id, path=src, filename="a.wav", mime="audio/wav",
                         session=client.session)
    assert err.value.retryable and err.value.retry_after
    methods = [entry["method"] for entry in installed_portal.b24.request_log]
    assert methods[-1] == "telephony.externalcall.attachrecord" and "upload" not in methods
