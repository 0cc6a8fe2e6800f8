"""Standard Webhooks, as a PBX vendor would write it from the spec (independent of the
connector's own code, so the tests that check one against the other mean something)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Mapping, Sequence

TOLERANCE_SECONDS = 300


def secret_bytes(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        return secret
    text = secret.strip()
    if text.startswith("whsec_"):
        text = text[len("whsec_") :]
    return base64.b64decode(text)


def signature(secret: str | bytes, webhook_id: str, timestamp: str, body: bytes) -> str:
    content = webhook_id.encode() + b"." + timestamp.encode() + b"." + body
    digest = hmac.new(secret_bytes(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign_headers(
    secrets: Sequence[str | bytes], body: bytes, *, webhook_id: str | None = None, timestamp: int | None = None
) -> dict[str, str]:
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": ts,
        "webhook-signature": " ".join(signature(s, webhook_id, ts, body) for s in secrets),
    }


def verify(
    secrets: Sequence[str | bytes], headers: Mapping[str, str], body: bytes, *, now: float | None = None
) -> str | None:
    """None when authentic, else the reason (what the PBX would log when refusing)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    webhook_id = lowered.get("webhook-id", "")
    timestamp = lowered.get("webhook-timestamp", "")
    signatures = lowered.get("webhook-signature", "")
    if not (webhook_id and timestamp and signatures):
        return "missing signature headers"
    try:
        sent_at = int(timestamp)
    except ValueError:
        return "bad timestamp"
    if abs((time.time() if now is None else now) - sent_at) > TOLERANCE_SECONDS:
        return "timestamp outside the tolerance"
    offered = signatures.split()
    for secret in secrets:
        expected = signature(secret, webhook_id, timestamp, body)
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return None
    return "no matching signature"
