"""The originate command on the wire, against the PBX simulator's real HTTP endpoint."""

from __future__ import annotations

import json
import time

import pytest

from calls.originate import transport
from calls.pbx_api import signing
from pbxsim.server import SimServer

BODY = {
    "request_id": "req-1",
    "kind": "click_to_call",
    "extension": "101",
    "client_number": "+74951234567",
    "line_number": "+74950000000",
    "crm_entity": {"type": "CONTACT", "id": 797},
}


@pytest.fixture
def pbx():
    with SimServer() as server:
        yield server


@pytest.fixture
def key() -> bytes:
    return signing.generate_secret()


def _send(pbx: SimServer, keys: list[bytes], body: dict | None = None, **kwargs) -> transport.OriginateOutcome:
    return transport.post_originate(
        pbx.originate_url("conn-1"), keys, body or BODY, request_id=(body or BODY)["request_id"], **kwargs
    )


def test_accepted_command_reaches_the_pbx_signed_with_the_exact_body(pbx, key):
    pbx.add_connection("conn-1", signing.encode_secret(key), mode="accept")
    outcome = _send(pbx, [key])
    assert (outcome.status, outcome.attempts, outcome.http_status) == ("accepted", 1, 202)
    [record] = pbx.state.commands
    assert record.verified
    assert record.body == BODY
    # the request id doubles as the Standard Webhooks message id
    assert record.headers["webhook-id"] == "req-1"


def test_pbx_that_holds_only_the_previous_secret_still_accepts_during_a_rotation(pbx):
    old, new = signing.generate_secret(), signing.generate_secret()
    pbx.add_connection("conn-1", signing.encode_secret(old), mode="accept")
    outcome = _send(pbx, [new, old])
    assert outcome.status == "accepted"
    assert pbx.state.commands[0].headers["webhook-signature"].count("v1,") == 2


def test_command_signed_with_a_wrong_secret_is_refused_by_the_pbx(pbx, key):
    pbx.add_connection("conn-1", signing.encode_secret(signing.generate_secret()), mode="accept")
    outcome = _send(pbx, [key])
    assert (outcome.status, outcome.http_status) == ("refused", 401)


def test_refusal_is_not_retried_and_carries_the_pbx_reason(pbx, key):
    pbx.add_connection("conn-1", signing.encode_secret(key), mode="refuse", refuse_status=404,
                       refuse_reason="unknown_extension")
    outcome = _send(pbx, [key])
    assert (outcome.status, outcome.attempts, outcome.http_status) == ("refused", 1, 404)
    assert outcome.detail == "refused by the PBX"
    assert len(pbx.state.commands) == 1


def test_server_errors_are_retried_with_the_same_message_id_until_the_budget_is_spent(pbx, key):
    pbx.add_connection("conn-1", signing.encode_secret(key), mode="error", error_status=503)
    started = time.monotonic()
    outcome = _send(pbx, [key], budget_seconds=2.0, backoff=(0.2, 0.4))
    elapsed = time.monotonic() - started
    assert outcome.status == "unreachable"
    assert outcome.http_status == 503
    assert outcome.attempts >= 3
    assert elapsed < 3.5
    assert {r.headers["webhook-id"] for r in pbx.state.commands} == {"req-1"}
    assert len(pbx.state.commands) == outcome.attempts


def test_a_pbx_that_never_answers_is_given_up_on_within_the_budget(pbx, key):
    pbx.add_connection("conn-1", signing.encode_secret(key), mode="timeout", timeout_s=10)
    started = time.monotonic()
    outcome = _send(pbx, [key], budget_seconds=2.0, attempt_timeout=0.6, backoff=(0.1,))
    elapsed = time.monotonic() - started
    assert outcome.status == "unreachable"
    assert outcome.http_status is None
    assert "no answer" in outcome.detail
    assert outcome.attempts >= 2
    assert elapsed < 3.5


def test_unreachable_host_counts_as_unreachable_not_refused(key):
    with SimServer() as server:
        url = server.originate_url("conn-1")
    outcome = transport.post_originate(url, [key], BODY, request_id="req-1", budget_seconds=1.0,
                                            backoff=(0.1,))
    assert outcome.status == "unreachable"
    assert outcome.detail.startswith("connection failed")


def test_a_repeated_command_places_one_call_only(pbx, key):
    pbx.add_connection("conn-1", signing.encode_secret(key), mode="accept")
    _send(pbx, [key])
    _send(pbx, [key])
    assert len(pbx.state.commands) == 2
    assert len(pbx.state.placed) == 1


def test_body_is_compact_utf8_json():
    raw = transport.encode_body({"text": "Перезвоните клиенту", "kind": "callback"})
    assert json.loads(raw) == {"text": "Перезвоните клиенту", "kind": "callback"}
    assert "Перезвоните".encode() in raw
