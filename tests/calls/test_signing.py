"""calls.pbx_api.signing: the Standard Webhooks scheme of pbx-api.md, both directions."""

from __future__ import annotations

import base64
import time

import pytest

from calls.pbx_api import signing

KEY = bytes(range(32))
OLD_KEY = b"\x01" * 32


def headers_for(body: bytes, *keys: bytes, webhook_id: str = "msg_1", ts: int | None = None) -> dict[str, str]:
    return signing.sign_headers(list(keys or [KEY]), body, webhook_id=webhook_id, timestamp=ts)


def test_signature_is_hmac_sha256_of_id_timestamp_and_raw_body_in_base64():
    # The example from the Standard Webhooks specification.
    key = signing.decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    body = b'{"test": 2432232314}'
    assert (
        signing.sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_secret_round_trips_through_the_whsec_format():
    text = signing.encode_secret(KEY)
    assert text.startswith("whsec_")
    assert signing.decode_secret(text) == KEY


def test_secret_that_is_not_base64_is_refused():
    with pytest.raises(ValueError):
        signing.decode_secret("whsec_not*base64")


def test_valid_signature_verifies_and_returns_the_headers():
    body = b'{"a": 1}'
    signed = signing.verify([KEY], headers_for(body), body)
    assert signed.webhook_id == "msg_1"


def test_binary_body_verifies():
    body = bytes(range(256)) * 10
    signing.verify([KEY], headers_for(body), body)


@pytest.mark.parametrize("tamper", ["body", "id", "timestamp"])
def test_any_change_to_the_signed_content_is_rejected(tamper):
    body = b'{"a": 1}'
    headers = headers_for(body)
    if tamper == "body":
        body = b'{"a": 2}'
    elif tamper == "id":
        headers["webhook-id"] = "msg_2"
    else:
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) - 1)
    with pytest.raises(signing.SignatureError) as exc:
        signing.verify([KEY], headers, body)
    assert exc.value.code == "invalid_signature"


def test_wrong_key_is_rejected():
    body = b"{}"
    with pytest.raises(signing.SignatureError):
        signing.verify([OLD_KEY], headers_for(body, KEY), body)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_is_named(missing):
    body = b"{}"
    headers = headers_for(body)
    del headers[missing]
    with pytest.raises(signing.SignatureError) as exc:
        signing.verify([KEY], headers, body)
    assert exc.value.code == "missing_signature"
    assert missing in str(exc.value)


@pytest.mark.parametrize("offset", [-301, 301, -3600])
def test_timestamp_more_than_five_minutes_away_is_rejected(offset):
    body = b"{}"
    now = time.time()
    headers = headers_for(body, ts=int(now) + offset)
    with pytest.raises(signing.SignatureError) as exc:
        signing.verify([KEY], headers, body, now=now)
    assert exc.value.code == "stale_timestamp"


@pytest.mark.parametrize("offset", [-299, 0, 299])
def test_timestamp_within_five_minutes_is_accepted(offset):
    body = b"{}"
    now = float(int(time.time()))
    signing.verify([KEY], headers_for(body, ts=int(now) + offset), body, now=now)


@pytest.mark.parametrize("value", ["soon", "1.5e9", "", "-5"])
def test_timestamp_that_is_not_integer_seconds_is_rejected(value):
    body = b"{}"
    headers = headers_for(body)
    headers["webhook-timestamp"] = value
    with pytest.raises(signing.SignatureError):
        signing.verify([KEY], headers, body)


def test_one_valid_signature_among_several_is_enough():
    body = b"{}"
    good = headers_for(body)["webhook-signature"]
    bogus = "v1," + base64.b64encode(b"x" * 32).decode()
    headers = headers_for(body)
    headers["webhook-signature"] = f"v1a,whatever garbage {bogus} v1,!!notbase64 {good}"
    signing.verify([KEY], headers, body)


def test_rotation_old_and_new_key_each_verify_a_request_signed_with_both():
    body = b"{}"
    headers = headers_for(body, KEY, OLD_KEY)
    assert len(headers["webhook-signature"].split()) == 2
    signing.verify([KEY], headers, body)
    signing.verify([OLD_KEY], headers, body)


def test_verifier_reports_which_key_matched():
    body = b"{}"
    signed = signing.parse_headers(headers_for(body, OLD_KEY))
    verifier = signing.StreamingVerifier([KEY, OLD_KEY], signed)
    verifier.update(body)
    assert verifier.verify() == 1


def test_streaming_verification_in_chunks_equals_whole_body():
    body = bytes(range(256)) * 1000
    signed = signing.parse_headers(headers_for(body))
    verifier = signing.StreamingVerifier([KEY], signed)
    for i in range(0, len(body), 4096):
        verifier.update(body[i : i + 4096])
    assert verifier.verify() == 0


def test_webhook_id_longer_than_128_characters_is_rejected():
    body = b"{}"
    with pytest.raises(signing.SignatureError):
        signing.verify([KEY], headers_for(body, webhook_id="x" * 129), body)


def test_headers_are_read_case_insensitively():
    body = b"{}"
    headers = {k.upper(): v for k, v in headers_for(body).items()}
    signing.verify([KEY], headers, body)


def test_no_keys_means_nothing_verifies():
    body = b"{}"
    with pytest.raises(signing.SignatureError):
        signing.verify([], headers_for(body), body)
