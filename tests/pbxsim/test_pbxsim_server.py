"""The simulator's HTTP side: the originate endpoint (driven by the connector's own originate
client, calls.originate.transport) and recordings served over HTTP."""

from __future__ import annotations

import io
import time
import wave

import pytest
import requests

from calls.originate.transport import post_originate
from calls.pbx_api import signing
from pbxsim import SimServer
from pbxsim.server import RecordingPolicy
from pbxsim.wav import wav_size

SECRET = signing.encode_secret(bytes(range(32)))
KEY = signing.decode_secret(SECRET)
COMMAND = {"request_id": "req-1", "kind": "click_to_call", "extension": "101", "client_number": "+74951234567"}


@pytest.fixture
def server():
    with SimServer() as srv:
        yield srv


def originate(server, *, keys=(KEY,), budget=2.0, request_id="req-1", **kw):
    return post_originate(server.originate_url("c1"), list(keys), {**COMMAND, "request_id": request_id},
                          request_id=request_id, budget_seconds=budget, attempt_timeout=1.0,
                          backoff=(0.1,), **kw)


def test_accepted_command_is_recorded_with_a_verified_signature(server):
    server.add_connection("c1", SECRET)
    outcome = originate(server)
    assert (outcome.status, outcome.http_status) == ("accepted", 202)
    [record] = server.state.commands
    assert record.verified and record.body == COMMAND
    assert record.headers["webhook-id"] == "req-1"


def test_command_signed_with_another_secret_is_401_and_not_placed(server):
    server.add_connection("c1", SECRET)
    outcome = originate(server, keys=[b"x" * 32])
    assert (outcome.status, outcome.http_status) == ("refused", 401)
    assert server.state.commands[0].reason == "no matching signature"
    assert server.state.placed == {}


def test_during_rotation_a_command_signed_with_both_secrets_is_accepted_by_a_pbx_with_the_old_one(server):
    server.add_connection("c1", SECRET)  # the PBX still has the old secret
    assert originate(server, keys=[b"n" * 32, KEY]).status == "accepted"


def test_refusing_pbx_answers_4xx_with_its_reason(server):
    server.add_connection("c1", SECRET, mode="refuse", refuse_status=422, refuse_reason="unknown_extension")
    outcome = originate(server)
    assert (outcome.status, outcome.http_status, outcome.attempts) == ("refused", 422, 1)
    assert outcome.detail == "refused by the PBX"


def test_failing_pbx_answers_5xx_and_the_connector_retries(server):
    server.add_connection("c1", SECRET, mode="error", error_status=503)
    outcome = originate(server, budget=1.5)
    assert outcome.status == "unreachable"
    assert outcome.attempts >= 2
    assert {r.status for r in server.state.commands} == {503}


def test_silent_pbx_holds_the_request_past_the_client_timeout(server):
    server.add_connection("c1", SECRET, mode="timeout", timeout_s=5)
    started = time.monotonic()
    outcome = originate(server, budget=1.2)
    assert outcome.status == "unreachable"
    assert "no answer" in outcome.detail
    assert time.monotonic() - started < 3


def test_repeated_request_id_places_one_call(server):
    server.add_connection("c1", SECRET)
    originate(server)
    originate(server)
    originate(server, request_id="req-2")
    assert len(server.state.commands) == 3
    assert server.state.placed == {"req-1": "orig-req-1", "req-2": "orig-req-2"}


def test_unknown_connection_path_is_404(server):
    response = requests.post(server.originate_url("nope"), data=b"{}", timeout=5)
    assert response.status_code == 404


# --- recordings ---------------------------------------------------------------------------------


def test_recording_is_a_valid_streamed_wav_with_content_length(server):
    response = requests.get(f"{server.base_url}/recordings/call-1.wav?seconds=2.5&tone=800", timeout=5, stream=True)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "audio/wav"
    assert int(response.headers["Content-Length"]) == wav_size(2.5)
    data = b"".join(response.iter_content(4096))
    with wave.open(io.BytesIO(data)) as w:
        assert w.getnframes() == 20000


def test_head_gives_the_size_without_the_body(server):
    response = requests.head(f"{server.base_url}/recordings/a.wav?seconds=10", timeout=5)
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == wav_size(10)
    assert response.content == b""


@pytest.mark.parametrize(
    ("auth", "good", "bad"),
    [
        (("basic", "rec", "pw"), ("rec", "pw"), ("rec", "wrong")),
        (("bearer", "tok"), {"Authorization": "Bearer tok"}, {"Authorization": "Bearer nope"}),
    ],
)
def test_recordings_can_require_credentials(server, auth, good, bad):
    server.state.recordings = RecordingPolicy(auth=auth)
    url = f"{server.base_url}/recordings/a.wav?seconds=1"

    def get(cred):
        if isinstance(cred, dict):
            return requests.get(url, headers=cred, timeout=5)
        return requests.get(url, auth=cred, timeout=5)

    assert requests.get(url, timeout=5).status_code == 401
    assert get(bad).status_code == 401
    assert get(good).status_code == 200


def test_recordings_can_fail_the_first_requests(server):
    server.state.recordings = RecordingPolicy(fail_first=2)
    url = f"{server.base_url}/recordings/a.wav?seconds=1"
    assert [requests.get(url, timeout=5).status_code for _ in range(3)] == [503, 503, 200]


def test_bad_recording_query_is_400(server):
    assert requests.get(f"{server.base_url}/recordings/a.wav?seconds=x", timeout=5).status_code == 400
    assert requests.get(f"{server.base_url}/recordings/a.wav?tone=441", timeout=5).status_code == 400
