"""Intake of the PBX API: events into the inbox, uploaded recordings onto disk (services).

Events are stored before the PBX gets its 202 and processed afterwards: the answer carries the new
events' ids as follow-ups, which the view queues (``calls.sync.tasks.process_pbx_event``) once the
request's transaction committed; an event whose message is lost stays ``pending`` for the sweeper.

An uploaded recording becomes a synthetic ``call.recording_ready`` inbox event whose payload has
``local_path`` (relative to ``settings.RECORDINGS_DIR``) and ``"url": null``, so a recording
reaches the state machine by one road whether the PBX uploaded it or published a URL.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mimetypes
import os
import re
import tempfile
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.http.multipartparser import MultiPartParser, MultiPartParserError
from django.utils import timezone

import inputguard
from calls.connections import signing
from calls.followups import FollowUps
from calls.models import PbxConnection, PbxEvent
from calls.pbx_api import signals
from calls.pbx_api.events import CALL_RECORDING_READY, MAX_ID_LENGTH, validate_events
from calls.pbx_api.receipts import answer_once
from calls.pbx_api.responses import PbxAnswer, PbxApiError, error_body
from calls.settings.selectors import recordings_on
from telephony_app import inserts

logger = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
RAW_AUDIO_TYPES = ("audio/", "application/octet-stream")


def uploads_dir(public_id: str) -> Path:
    """Where the recordings a connection uploaded are kept."""
    return Path(settings.RECORDINGS_DIR) / "uploads" / public_id


def load_json(body: bytes) -> Any:
    def reject_constant(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    return json.loads(body, parse_constant=reject_constant)


@dataclass(frozen=True)
class StoreResult:
    accepted: int
    duplicates: int
    new_ids: list[int]
    new_types: list[str]


def store_events(connection: PbxConnection, payloads: list[dict], *, webhook_id: str) -> StoreResult:
    """Insert validated events; an event_id seen before on this connection is a duplicate.

    One ``INSERT … ON CONFLICT DO NOTHING`` for the whole request (``telephony_app.inserts``): a
    duplicate, even one committed by a concurrent request a moment ago, is counted instead of failing
    the batch.
    """
    now = timezone.now()
    events = [
        PbxEvent(connection=connection, event_id=payload["event_id"], webhook_id=webhook_id, type=payload["type"],
                 call_id=payload["call_id"], occurred_at=datetime.fromisoformat(payload["occurred_at"]),
                 payload=payload, received_at=now)
        for payload in payloads
    ]
    new = inserts.insert_new(events, key=("connection", "event_id"))
    return StoreResult(len(new), len(payloads) - len(new), [event.pk for event in new], [event.type for event in new])


def _announce(connection: PbxConnection, stored: list[StoreResult], replayed: bool) -> None:
    """``signals.events_accepted`` for what a request stored, once its transaction has ended with it: a
    replayed request's handler may have stored events that were then rolled back."""
    types = [] if replayed else [kind for result in stored for kind in result.new_types]
    if types:
        signals.events_accepted.send(sender=PbxEvent, portal_id=connection.portal_id, types=types)


def _pump_if(result: StoreResult, connection: PbxConnection) -> FollowUps:
    """New events are the portal pump's to apply (``calls.sync.pump``); duplicates ask for nothing."""
    return FollowUps(pump_portals=[connection.portal_id] if result.new_ids else [])


def receive_events(connection: PbxConnection, webhook_id: str, body: bytes) -> PbxAnswer:
    """``POST …/events``: the raw, already verified body → 202 / 400 (or a replayed answer)."""
    stored: list[StoreResult] = []

    def handle() -> PbxAnswer:
        try:
            data = load_json(body)
        except (ValueError, RecursionError) as exc:
            return PbxAnswer(400, error_body("invalid_json", f"The body is not valid JSON: {exc}"))
        context = {"allowed_recording_hosts": connection.allowed_recording_hosts()}
        payloads, fields, detail = validate_events(data, context)
        if detail:
            return PbxAnswer(400, error_body("invalid_event" if fields else "invalid_body", detail, fields))
        result = store_events(connection, payloads, webhook_id=webhook_id)
        stored.append(result)
        return PbxAnswer(202, {"accepted": result.accepted, "duplicates": result.duplicates},
                         _pump_if(result, connection))

    # Events are rows by unique key: a concurrent copy of this request waits on them and stores nothing,
    # so the receipt is written once, with the answer (receipts.answer_once).
    answer, replayed = answer_once(connection, webhook_id, handle, claim_first=False)
    _announce(connection, stored, replayed)
    return answer


# --- recordings uploaded by the PBX ---------------------------------------------------------


@dataclass
class SpooledBody:
    path: Path
    size: int
    sha256: str


def _spool_dir() -> Path:
    spool = Path(settings.RECORDINGS_DIR) / "tmp"
    spool.mkdir(parents=True, exist_ok=True)
    return spool


def spool_and_verify(
    stream: IO[bytes], verifier: signing.StreamingVerifier, *, content_length: int | None, max_bytes: int
) -> SpooledBody:
    """Copy the raw body to a temporary file next to its final place, feeding the signature
    verifier as it goes; 413 past ``max_bytes``, 401 when no signature matches. The file is
    removed on any failure."""
    if content_length is not None and content_length > max_bytes:
        raise PbxApiError(413, "too_large", f"The body is larger than the limit of {max_bytes} bytes.")
    fd, name = tempfile.mkstemp(dir=_spool_dir(), suffix=".part")
    path = Path(name)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while True:
                chunk = stream.read(CHUNK_BYTES)
                if not chunk:
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise PbxApiError(413, "too_large", f"The body is larger than the limit of {max_bytes} bytes.")
                verifier.update(chunk)
                digest.update(chunk)
                out.write(chunk)
        verifier.verify()
    except signing.SignatureError as exc:
        path.unlink(missing_ok=True)
        raise PbxApiError(401, exc.code, str(exc)) from exc
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return SpooledBody(path, size, digest.hexdigest())


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _clean_filename(name: str | None, call_id: str, content_type: str) -> str:
    base = os.path.basename((name or "").replace("\\", "/")).strip()
    base = _SAFE_NAME.sub("_", base).strip("._")[:120]
    if not base:
        ext = mimetypes.guess_extension(content_type) or ".bin"
        base = _SAFE_NAME.sub("_", call_id)[:100] + ext
    return base


def _filename_from_disposition(value: str) -> str | None:
    match = re.search(r'filename\*?=(?:UTF-8\'\')?"?([^";]+)"?', value or "", re.IGNORECASE)
    return match.group(1) if match else None


@dataclass
class UploadedAudio:
    path: Path
    size: int
    sha256: str
    filename: str
    content_type: str


def _extract_multipart(spooled: SpooledBody, content_type: str) -> UploadedAudio:
    """Parse the spooled multipart body and keep its ``file`` part (streamed to disk by Django)."""

    meta = {"CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(spooled.size)}
    handler = TemporaryFileUploadHandler()
    with spooled.path.open("rb") as fh:
        try:
            _, files = MultiPartParser(meta, fh, [handler], encoding="utf-8").parse()
        except MultiPartParserError as exc:
            raise PbxApiError(400, "invalid_multipart", f"The multipart body cannot be parsed: {exc}") from exc
    upload = files.get("file")
    if upload is None:
        raise PbxApiError(
            400, "invalid_body", "The multipart body has no field named file.", {"file": ["This field is required."]}
        )
    target = spooled.path.with_suffix(".audio")
    os.replace(upload.temporary_file_path(), target)
    upload.close()
    digest = hashlib.sha256()
    with target.open("rb") as fh:
        for chunk in iter(partial(fh.read, CHUNK_BYTES), b""):
            digest.update(chunk)
    return UploadedAudio(
        target, target.stat().st_size, digest.hexdigest(), upload.name or "", upload.content_type or ""
    )


def receive_recording(
    connection: PbxConnection,
    call_id: str,
    spooled: SpooledBody,
    *,
    webhook_id: str,
    content_type: str,
    content_disposition: str = "",
) -> PbxAnswer:
    """``POST …/calls/{call_id}/recording`` after the body was spooled and verified."""
    moved: list[Path] = []
    stored: list[StoreResult] = []

    def handle() -> PbxAnswer:
        if not call_id or len(call_id) > MAX_ID_LENGTH:
            return PbxAnswer(400, error_body(
                "invalid_call_id", f"call_id must be 1 to {MAX_ID_LENGTH} characters.", {"call_id": ["Invalid."]}
            ))
        if problem := inputguard.text_problem(call_id):
            return PbxAnswer(400, error_body("invalid_call_id", f"call_id: {problem}", {"call_id": [problem]}))
        if spooled.size == 0:
            return PbxAnswer(400, error_body("empty_recording", "The body is empty: no recording was sent."))
        media = content_type.split(";", 1)[0].strip().lower()
        if media == "multipart/form-data":
            try:
                audio = _extract_multipart(spooled, content_type)
            except PbxApiError as exc:
                return exc.answer()
        elif media.startswith(RAW_AUDIO_TYPES):
            audio = UploadedAudio(
                spooled.path, spooled.size, spooled.sha256, _filename_from_disposition(content_disposition) or "", media
            )
        else:
            return PbxAnswer(400, error_body(
                "unsupported_content_type",
                f"Content-Type {media or '(none)'} is not accepted: send the audio as the raw body with its audio/* "
                "type, or as multipart/form-data with a field named file.",
            ))
        if audio.size == 0:
            return PbxAnswer(400, error_body("empty_recording", "The recording is empty."))
        if not recordings_on(connection.portal_id):
            # The portal switched recordings off: nothing is kept, nothing will be attached.
            return PbxAnswer(202, {"accepted": 0, "duplicates": 0, "size_bytes": audio.size, "sha256": audio.sha256,
                                   "discarded": True})
        audio_type = audio.content_type.split(";", 1)[0].strip().lower() or "application/octet-stream"
        filename = _clean_filename(audio.filename, call_id, audio_type)
        final = uploads_dir(connection.public_id) / f"{uuid.uuid4().hex}{Path(filename).suffix}"
        relative = final.relative_to(Path(settings.RECORDINGS_DIR))
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(audio.path, final)
        moved.append(final)
        now = timezone.now()
        # Same audio for the same call uploaded twice (a PBX retry with a new webhook-id) is a duplicate.
        event_id = "upload:" + hashlib.sha256(f"{call_id}\n{audio.sha256}".encode()).hexdigest()
        payload = {
            "event_id": event_id,
            "type": CALL_RECORDING_READY,
            "call_id": call_id,
            "occurred_at": now.isoformat(),
            "url": None,
            "local_path": relative.as_posix(),
            "filename": filename,
            "content_type": audio_type,
            "size_bytes": audio.size,
            "sha256": audio.sha256,
            "source": "upload",
        }
        # The part's own headers (its Content-Type) come from the body, unchecked by anything before.
        if poison := inputguard.find_poison(payload):
            field, problem = poison
            return PbxAnswer(400, error_body("invalid_body", f"{field}: {problem}", {field: [problem]}))
        result = store_events(connection, [payload], webhook_id=webhook_id)
        stored.append(result)
        if result.duplicates:
            final.unlink(missing_ok=True)
            moved.clear()
        return PbxAnswer(202, {
            "accepted": result.accepted, "duplicates": result.duplicates,
            "size_bytes": audio.size, "sha256": audio.sha256,
        }, _pump_if(result, connection))

    try:
        answer, replayed = answer_once(connection, webhook_id, handle)
        _announce(connection, stored, replayed)
    except PbxApiError as exc:
        answer = exc.answer()
    except BaseException:
        for path in moved:
            path.unlink(missing_ok=True)
        raise
    finally:
        spooled.path.unlink(missing_ok=True)
        spooled.path.with_suffix(".audio").unlink(missing_ok=True)
    if answer.status >= 300:
        for path in moved:
            path.unlink(missing_ok=True)
    return answer
