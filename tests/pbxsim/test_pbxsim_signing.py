"""The simulator's own Standard Webhooks code agrees with the connector's (calls.pbx_api.signing)."""

from __future__ import annotations

import time

import pytest

from calls.pbx_api import signing
from pbxsim import signing as sim_signing

SECRET = signing.encode_secret(bytes(range(32)))
OTHER = signing.encode_secret(b"\x07" * 32)
BODY = '{"event_id": "e1", "note": "звонок"}'.encode()


def test_simulator_signature_verifies_with_the_connector():
    headers = sim_signing.sign_headers([SECRET], BODY)
    assert signing.verify([signing.decode_secret(SECRET)], headers, BODY).webhook_id == headers["webhook-id"]


def test_connector_signature_verifies_with_the_simulator():
    headers = signing.sign_headers([signing.decode_secret(SECRET)], BODY)
    assert sim_signing.verify([SECRET], headers, BODY) is None


def test_both_produce_the_same_signature_for_the_same_input():
    ts = int(time.time())
    ours = signing.sign(signing.decode_secret(SECRET), "msg_1", ts, BODY)
    theirs = sim_signing.signature(SECRET, "msg_1", str(ts), BODY)
    assert ours == theirs


def test_simulator_matches_the_standard_webhooks_reference_vector():
    assert (
        sim_signing.signature("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
                              "1614265330", b'{"test": 2432232314}')
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_rotation_signatures_from_the_simulator_verify_with_either_key():
    headers = sim_signing.sign_headers([SECRET, OTHER], BODY)
    signing.verify([signing.decode_secret(OTHER)], headers, BODY)
    signing.verify([signing.decode_secret(SECRET)], headers, BODY)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda h: h.pop("webhook-signature"), "missing signature headers"),
        (lambda h: h.update({"webhook-timestamp": str(int(time.time()) - 400)}), "timestamp outside the tolerance"),
        (lambda h: h.update({"webhook-id": "other"}), "no matching signature"),
    ],
)
def test_simulator_refuses_what_the_connector_would_refuse(mutate, reason):
    headers = signing.sign_headers([signing.decode_secret(SECRET)], BODY)
    mutate(headers)
    assert sim_signing.verify([SECRET], headers, BODY) == reason
    with pytest.raises(signing.SignatureError):
        signing.verify([signing.decode_secret(SECRET)], headers, BODY)
