"""Attach a recording to a finished Bitrix24 call with the two-step uploadUrl mode.

Step 1: ``telephony.externalCall.attachRecord`` with CALL_ID and FILENAME only answers
``{"uploadUrl", "fieldName"}``. Step 2: a streamed multipart POST of the file to uploadUrl.
This avoids Base64 in a REST call (a third more bytes, held in memory, under the 60 s request
limit). The uploadUrl carries the portal's access token in its query string, so it is only ever
logged through ``b24client.redact``. Every attempt starts again at step 1: an uploadUrl dies
with its token, and a second attachRecord for the same call replaces the earlier recording,
so repeating a half-finished attempt cannot produce two recordings.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
from requests_toolbelt import MultipartEncoder

from b24client import errors as b24errors
from b24client.redact import redact_text, redact_url
from b24client.transport import record

from .errors import CallNotFinished, RecordingError, UploadFailed

logger = logging.getLogger(__name__)

METHOD = "telephony.externalcall.attachrecord"
_NOT_FINISHED = re.compile(r"not found in the statistic table|not finished", re.I)


class RestClient(Protocol):
    def call(self, method: str, params: dict[str, Any] | None = None) -> Any: ...

    def take_request_slot(self, what: str) -> None: ...


@dataclass(frozen=True)
class UploadResult:
    filename: str
    size: int
    response: Any   # the upload step's result (undocumented by Bitrix24; kept for the log)


def make_filename(*, started_at: datetime | None, direction: str, number: str, unique: str,
                  extension: str) -> str:
    """``2026-11-27_14-30-05_inbound_74951234567_ab12cd34.mp3``: sortable, readable, unique per call."""
    stamp = started_at.strftime("%Y-%m-%d_%H-%M-%S") if started_at else "unknown-time"
    digits = re.sub(r"\D", "", number or "")[:20] or "unknown"
    direction = re.sub(r"[^a-z]", "", (direction or "").lower()) or "call"
    tail = re.sub(r"[^A-Za-z0-9]", "", unique)[-8:] or "rec"
    return f"{stamp}_{direction}_{digits}_{tail}.{extension}"


def upload_recording(client: RestClient, *, b24_call_id: str, path: Path, filename: str, mime: str,
                     session: requests.Session | None = None, expected_origin: str | None = None,
                     timeout: tuple[float, float] = (10.0, 600.0)) -> UploadResult:
    """Run both steps; raise CallNotFinished or UploadFailed (with ``retryable``) on failure."""
    if not filename.lower().endswith((".wav", ".mp3")):
        raise UploadFailed("Bitrix24 accepts only .wav and .mp3 recordings")
    upload_url, field_name = _request_upload_url(client, b24_call_id, filename)
    store = getattr(client, "store", None)
    if expected_origin is None and store is not None:
        # Read after step 1: a portal rename the client just followed moved the origin too.
        expected_origin = store.load().client_endpoint
    _check_upload_origin(upload_url, expected_origin)
    size = path.stat().st_size
    http = session or requests.Session()
    # The upload POST counts against the portal's request budget like a REST call (docs/bitrix24-contract.md
    # §3.1): unaccounted, a burst of uploads overfilled the bucket and drew 503s.
    try:
        client.take_request_slot(f"{METHOD} (upload)")
    except b24errors.Bitrix24Error as exc:
        raise _from_bitrix24(exc) from exc
    started = time.monotonic()
    # The portal's REST log shows the upload step next to attachRecord, token masked.
    entry: dict[str, Any] = {
        "member_id": getattr(client, "member_id", None), "method": f"{METHOD} (upload)",
        "url": redact_url(upload_url), "request": {"field": field_name, "filename": filename, "bytes": size},
        "status": None, "response": None, "duration_ms": None, "error": None,
    }
    recorder = getattr(client, "recorder", None)
    with open(path, "rb") as fh:
        body = MultipartEncoder(fields={field_name: (filename, fh, mime)})
        try:
            response = http.post(upload_url, data=body, headers={"Content-Type": body.content_type},
                                 timeout=timeout, allow_redirects=False)
        except requests.RequestException as exc:
            entry.update(error=type(exc).__name__, duration_ms=int((time.monotonic() - started) * 1000))
            record(recorder, entry)
            raise UploadFailed(f"recording upload to Bitrix24 failed: {type(exc).__name__}",
                               retryable=True) from exc
    entry.update(status=response.status_code, duration_ms=int((time.monotonic() - started) * 1000),
                 response=redact_text(response.text[:2000]))
    try:
        result = _check_upload_response(response)
    except RecordingError as exc:
        entry["error"] = exc.reason[:200]
        raise
    finally:
        record(recorder, entry)
    logger.info("recording %s (%d bytes) uploaded to %s in %.1f s", filename, size,
                redact_url(upload_url), time.monotonic() - started)
    return UploadResult(filename=filename, size=size, response=result)


def _request_upload_url(client: RestClient, b24_call_id: str, filename: str) -> tuple[str, str]:
    try:
        rest = client.call(METHOD, {"CALL_ID": b24_call_id, "FILENAME": filename})
    except b24errors.Bitrix24Error as exc:
        raise _from_bitrix24(exc) from exc
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise UploadFailed(f"Bitrix24 unreachable: {type(exc).__name__}", retryable=True) from exc
    result = getattr(rest, "result", rest)
    if not isinstance(result, dict) or not result.get("uploadUrl"):
        raise UploadFailed("Bitrix24 attachRecord answered without an uploadUrl", retryable=True)
    return str(result["uploadUrl"]), str(result.get("fieldName") or "file")


def _check_upload_origin(upload_url: str, expected_origin: str | None) -> None:
    """The recording (and the token in the URL) may only go back to the portal that issued it."""
    if not expected_origin:
        return
    got, want = urlsplit(upload_url), urlsplit(expected_origin)
    if (got.scheme, got.netloc.lower()) != (want.scheme, want.netloc.lower()):
        raise UploadFailed("Bitrix24 gave an uploadUrl outside the portal's own address; refused")


def _check_upload_response(response: requests.Response) -> Any:
    status = response.status_code
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict) and payload.get("error") is not None and (
        payload.get("error") or payload.get("error_description")
    ):
        exc = b24errors.from_payload(payload, status, METHOD)
        raise _from_bitrix24(exc)
    if status >= 500 or status in (408, 429):
        raise UploadFailed(f"Bitrix24 upload answered HTTP {status}", retryable=True)
    if status >= 300:
        raise UploadFailed(f"Bitrix24 refused the recording upload (HTTP {status})",
                           retryable=status == 401)
    if payload is None:
        # The answer of this step is undocumented; a 2xx without JSON is an odd proxy, not Bitrix24.
        raise UploadFailed(f"Bitrix24 upload answered HTTP {status} without JSON", retryable=True)
    return payload.get("result", payload) if isinstance(payload, dict) else payload


def _from_bitrix24(exc: b24errors.Bitrix24Error) -> RecordingError:
    text = exc.description or exc.code or str(exc)
    if _NOT_FINISHED.search(exc.description or ""):
        return CallNotFinished(
            "Bitrix24 does not accept the recording yet: the call is not finished there", retry_after=60
        )
    if isinstance(exc, b24errors.RateLimited):
        return UploadFailed("Bitrix24 rate limit reached", retryable=True, retry_after=exc.retry_after)
    if isinstance(exc, b24errors.MethodBlocked):
        return UploadFailed("Bitrix24 blocked attachRecord for a while (operation time limit)",
                            retryable=True, retry_after=max(1.0, exc.until - time.time()))
    if isinstance(exc, b24errors.TokenExpired):
        # The next attempt's attachRecord goes through the client, which refreshes the token.
        return UploadFailed("Bitrix24 access token expired during the upload", retryable=True, retry_after=1)
    if isinstance(exc, b24errors.TokenDead):
        return UploadFailed(f"the portal's Bitrix24 authorization is no longer valid ({exc.code or text})")
    if exc.retryable:
        return UploadFailed(f"Bitrix24 temporarily failed: {text}", retryable=True)
    return UploadFailed(f"Bitrix24 refused the recording: {text}")
