"""Standard Webhooks signing and verification (both directions of the PBX API).

Hand-written rather than the ``standardwebhooks`` package (1.1.0) because that library
decodes the body as UTF-8 (recording uploads are binary), needs the whole body in memory
(uploads are streamed to disk and verified chunk by chunk), checks one secret per object
(rotation needs several), lets malformed signature entries escape as ``ValueError`` /
``binascii.Error`` and reads the wall clock only. The scheme itself is a few lines of ``hmac``.

No Django import: the PBX simulator's tests and other tools use this module as is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

SECRET_PREFIX = "whsec_"
TOLERANCE_SECONDS = 300
MAX_WEBHOOK_ID_LENGTH = 128
SECRET_BYTES = 32
# Only v1 (symmetric HMAC-SHA256) exists in the scheme we speak; a bounded list keeps a hostile
# header from turning into a CPU sink.
MAX_SIGNATURES = 10

_TIMESTAMP_RE = re.compile(r"^[0-9]{1,12}$")


class SignatureError(Exception):
    """The request is not authentic. ``code`` is machine-readable, ``str()`` is for humans."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def generate_secret() -> bytes:
    return secrets.token_bytes(SECRET_BYTES)


def encode_secret(key: bytes) -> str:
    return SECRET_PREFIX + base64.b64encode(key).decode("ascii")


def decode_secret(text: str) -> bytes:
    raw = text.strip()
    if raw.startswith(SECRET_PREFIX):
        raw = raw[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("secret must be whsec_ followed by Base64") from exc
    if not key:
        raise ValueError("secret is empty")
    return key


def _mac(key: bytes, webhook_id: str, timestamp: str) -> hmac.HMAC:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    mac.update(f"{webhook_id}.{timestamp}.".encode())
    return mac


def sign(key: bytes, webhook_id: str, timestamp: int | str, body: bytes) -> str:
    """One ``v1,<base64>`` signature entry."""
    mac = _mac(key, webhook_id, str(timestamp))
    mac.update(body)
    return "v1," + base64.b64encode(mac.digest()).decode("ascii")


def new_webhook_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def sign_headers(
    keys: Sequence[bytes], body: bytes, *, webhook_id: str | None = None, timestamp: int | None = None
) -> dict[str, str]:
    """Headers for an outgoing request, one signature per key (several during a rotation)."""
    if not keys:
        raise ValueError("at least one key is needed to sign")
    webhook_id = webhook_id or new_webhook_id()
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": ts,
        "webhook-signature": " ".join(sign(key, webhook_id, ts, body) for key in keys),
    }


@dataclass(frozen=True)
class SignedHeaders:
    webhook_id: str
    timestamp: str
    signatures: tuple[bytes, ...]


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        lowered = {k.lower(): v for k, v in headers.items()}
        value = lowered.get(name)
    return (value or "").strip()


def parse_headers(
    headers: Mapping[str, str], *, now: float | None = None, tolerance: int = TOLERANCE_SECONDS
) -> SignedHeaders:
    """Check the three headers and the timestamp window; signatures are checked by a verifier."""
    webhook_id = _header(headers, "webhook-id")
    timestamp = _header(headers, "webhook-timestamp")
    signature = _header(headers, "webhook-signature")
    missing = [
        name
        for name, value in (
            ("webhook-id", webhook_id),
            ("webhook-timestamp", timestamp),
            ("webhook-signature", signature),
        )
        if not value
    ]
    if missing:
        raise SignatureError("missing_signature", "missing header(s): " + ", ".join(missing))
    if len(webhook_id) > MAX_WEBHOOK_ID_LENGTH:
        raise SignatureError("invalid_signature", f"webhook-id is longer than {MAX_WEBHOOK_ID_LENGTH} characters")
    if not _TIMESTAMP_RE.match(timestamp):
        raise SignatureError("invalid_timestamp", "webhook-timestamp must be integer Unix seconds")
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance:
        raise SignatureError(
            "stale_timestamp", f"webhook-timestamp is more than {tolerance} seconds away from the server clock"
        )
    parsed: list[bytes] = []
    for entry in signature.split()[:MAX_SIGNATURES]:
        version, _, value = entry.partition(",")
        if version != "v1" or not value:
            continue
        try:
            parsed.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    if not parsed:
        raise SignatureError("invalid_signature", "webhook-signature has no v1 signature")
    return SignedHeaders(webhook_id, timestamp, tuple(parsed))


class StreamingVerifier:
    """Verify a body fed in chunks against every candidate key (rotation overlap)."""

    def __init__(self, keys: Iterable[bytes], signed: SignedHeaders) -> None:
        self.signed = signed
        self._macs = [_mac(key, signed.webhook_id, signed.timestamp) for key in keys]

    def update(self, chunk: bytes) -> None:
        for mac in self._macs:
            mac.update(chunk)

    def verify(self) -> int:
        """Index of the key that signed the body; raises ``SignatureError`` when none did."""
        matched = None
        for index, mac in enumerate(self._macs):
            expected = mac.digest()
            for candidate in self.signed.signatures:
                # Every comparison runs: no early exit that would time which key matched.
                if hmac.compare_digest(expected, candidate) and matched is None:
                    matched = index
        if matched is None:
            raise SignatureError("invalid_signature", "no signature matches the body")
        return matched


def verify(
    keys: Sequence[bytes],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> SignedHeaders:
    signed = parse_headers(headers, now=now, tolerance=tolerance)
    verifier = StreamingVerifier(keys, signed)
    verifier.update(body)
    verifier.verify()
    return signed
