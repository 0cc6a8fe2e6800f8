"""POST /api/pbx/v1/connections/{id}/calls/{call_id}/recording: uploads become inbox events."""

from __future__ import annotations

import hashlib
import io
import wave

import pytest
from pbx_api_fixtures import *  # noqa: F403 (fixtures)

from calls.models import PbxEvent
from calls.pbx_api import signing
from calls.pbx_api.intake import spool_and_verify
from calls.pbx_api.responses import PbxApiError
from pbxsim.wav import wav_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def recordings_dir(settings, tmp_path):
    settings.RECORDINGS_DIR = tmp_path
    return tmp_path


def stored_files(root):
    return sorted(p for p in (root / "uploads").rglob("*") if p.is_file()) if (root / "uploads").exists() else []


def leftovers(root):
    return list((root / "tmp").iterdir()) if (root / "tmp").exists() else []


def test_raw_audio_body_is_stored_and_becomes_a_recording_ready_event(tenant, recordings_dir):
    audio = wav_bytes(1.5)
    sent = tenant.sim.upload_recording("1700000000.42", audio, content_type="audio/wav")
    assert sent.response.status == 202
    digest = hashlib.sha256(audio).hexdigest()
    assert sent.response.json() == {"accepted": 1, "duplicates": 0, "size_bytes": len(audio), "sha256": digest}
    event = PbxEvent.objects.get()
    assert (event.type, event.call_id, event.connection) == ("call.recording_ready", "1700000000.42", tenant.connection)
    payload = event.payload
    assert payload["url"] is None
    assert payload["source"] == "upload"
    assert payload["content_type"] == "audio/wav"
    assert payload["filename"] == "1700000000.42.wav"
    assert (payload["size_bytes"], payload["sha256"]) == (len(audio), digest)
    stored = recordings_dir / payload["local_path"]
    assert stored.read_bytes() == audio
    assert stored.parent == recordings_dir / "uploads" / tenant.connection.public_id
    with wave.open(io.BytesIO(stored.read_bytes())) as w:
        assert w.getnframes() == 12000
    assert leftovers(recordings_dir) == []


def test_multipart_upload_keeps_only_the_file_part(tenant, recordings_dir):
    audio = wav_bytes(0.5, tone_hz=800)
    sent = tenant.sim.upload_recording("call-7", audio, multipart=True, filename="rec 07.wav")
    assert sent.response.status == 202, sent.response.body
    payload = PbxEvent.objects.get().payload
    assert payload["filename"] == "rec_07.wav"
    assert payload["sha256"] == hashlib.sha256(audio).hexdigest()
    assert (recordings_dir / payload["local_path"]).read_bytes() == audio
    assert leftovers(recordings_dir) == []


def test_multipart_without_a_file_field_is_400_and_nothing_is_kept(tenant, recordings_dir):
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nhello\r\n--{boundary}--\r\n").encode()
    sent = tenant.sim.request("POST", "calls/call-1/recording", body,
                              content_type=f"multipart/form-data; boundary={boundary}")
    assert sent.response.status == 400
    assert "file" in sent.response.json()["fields"]
    assert not PbxEvent.objects.exists()
    assert stored_files(recordings_dir) == []
    assert leftovers(recordings_dir) == []


def test_signature_covers_the_raw_body(tenant, recordings_dir):
    audio = wav_bytes(0.2)
    headers = signing.sign_headers([signing.decode_secret(tenant.secret)], audio)
    tampered = audio[:-1] + b"\x00"
    sent = tenant.sim.request("POST", "calls/call-1/recording", tampered, content_type="audio/wav",
                              sign=False, headers=headers)
    assert sent.response.status == 401
    assert not PbxEvent.objects.exists()
    assert stored_files(recordings_dir) == []
    assert leftovers(recordings_dir) == []


def test_recording_over_the_size_cap_is_413_and_leaves_no_file(tenant, recordings_dir, settings):
    settings.RECORDING_MAX_BYTES = 10_000
    sent = tenant.sim.upload_recording("call-1", wav_bytes(1))
    assert sent.response.status == 413
    assert sent.response.json()["error"] == "too_large"
    assert not PbxEvent.objects.exists()
    assert leftovers(recordings_dir) == []


def test_size_cap_is_enforced_while_streaming_a_body_without_content_length(recordings_dir):
    audio = wav_bytes(1)
    signed = signing.parse_headers(signing.sign_headers([b"k" * 32], audio))
    with pytest.raises(PbxApiError) as exc:
        spool_and_verify(io.BytesIO(audio), signing.StreamingVerifier([b"k" * 32], signed),
                         content_length=None, max_bytes=1000)
    assert exc.value.status == 413
    assert leftovers(recordings_dir) == []


def test_same_audio_for_the_same_call_uploaded_again_is_a_duplicate(tenant, recordings_dir):
    audio = wav_bytes(0.3)
    tenant.sim.upload_recording("call-1", audio)
    again = tenant.sim.upload_recording("call-1", audio)  # a PBX retry with a new webhook-id
    assert again.response.json()["duplicates"] == 1
    assert PbxEvent.objects.count() == 1
    assert len(stored_files(recordings_dir)) == 1


def test_same_audio_for_another_call_is_another_recording(tenant, recordings_dir):
    audio = wav_bytes(0.3)
    tenant.sim.upload_recording("call-1", audio)
    tenant.sim.upload_recording("call-2", audio)
    assert PbxEvent.objects.count() == 2


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", ""])
def test_non_audio_raw_body_is_400(tenant, recordings_dir, content_type):
    sent = tenant.sim.upload_recording("call-1", b"hello", content_type=content_type)
    assert sent.response.status == 400
    assert sent.response.json()["error"] == "unsupported_content_type"
    assert stored_files(recordings_dir) == []


def test_empty_recording_is_400(tenant, recordings_dir):
    sent = tenant.sim.upload_recording("call-1", b"", content_type="audio/mpeg")
    assert sent.response.status == 400
    assert sent.response.json()["error"] == "empty_recording"


def test_octet_stream_is_accepted_as_audio(tenant, recordings_dir):
    assert tenant.sim.upload_recording("call-1", b"ID3fake-mp3", content_type="application/octet-stream",
                                       filename="a.mp3").response.status == 202


def test_call_id_longer_than_128_characters_is_400(tenant, recordings_dir):
    sent = tenant.sim.upload_recording("c" * 129, wav_bytes(0.1))
    assert sent.response.status == 400
    assert "call_id" in sent.response.json()["fields"]


def test_filename_from_the_pbx_cannot_escape_the_recordings_directory(tenant, recordings_dir):
    sent = tenant.sim.upload_recording("call-1", wav_bytes(0.1), filename="../../etc/passwd.wav")
    assert sent.response.status == 202
    payload = PbxEvent.objects.get().payload
    assert payload["filename"] == "passwd.wav"
    assert (recordings_dir / payload["local_path"]).resolve().is_relative_to(recordings_dir / "uploads")


def test_upload_to_another_tenants_connection_is_refused(tenant, other_tenant, recordings_dir):
    sent = tenant.sim.upload_recording("call-1", wav_bytes(0.1), secrets=[other_tenant.secret])
    assert sent.response.status == 401
    assert stored_files(recordings_dir) == []
    assert leftovers(recordings_dir) == []
