"""The state machine's entry point: attach one call's recording to its finished Bitrix24 call.

Contract (docs/architecture.md, "Recordings"): ``attach_recording`` returns an ``AttachOutcome``
when the recording is in Bitrix24, and raises a ``RecordingError`` otherwise. The caller owns
scheduling and bookkeeping: on ``exc.retryable`` it tries again after ``exc.retry_after`` (or its
own backoff, see ``retry_delay``); otherwise it records ``exc.reason`` for the vendor and the
admin (dead letter, replayable once the cause is fixed). Nothing here writes to ``Call``.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any

import requests

from portals.errors import PortalUnavailable
from portals.services import bitrix24_client_for

from ..models import Call, PbxConnection, PbxEvent
from .addresses import Resolver, system_resolver
from .conf import recording_settings
from .download import FetchPolicy
from .errors import CallNotFinished, RecordingError, SourceRefused, UploadFailed
from .transfer import CallInfo, RecordingSource, transfer_recording
from .upload import RestClient

logger = logging.getLogger(__name__)

RECORDING_READY = "call.recording_ready"


@dataclass(frozen=True)
class AttachOutcome:
    event_id: str              # the recording event now attached (-> Call.recording_key)
    filename: str              # the name Bitrix24 shows
    size_bytes: int            # bytes uploaded
    source_sha256: str
    converted_from: str | None  # e.g. "audio/ogg" when ffmpeg made the mp3
    file_id: Any               # Bitrix24's FILE_ID when the upload step reports one


def retry_delay(attempt: int, exc: RecordingError | None = None) -> float:
    """Suggested wait before attempt ``attempt + 1`` (1-based ``attempt``): the error's own hint
    when it has one, else 30 s doubling to a 10-minute cap, with jitter so a portal's backlog
    does not retry in lockstep."""
    if exc is not None and exc.retry_after:
        return float(exc.retry_after)
    base = min(600.0, 30.0 * 2 ** max(0, attempt - 1))
    return base * random.uniform(0.8, 1.2)


def attach_recording(*, call_pk: int, event_id: str | None = None, client: RestClient | None = None,
                     resolver: Resolver = system_resolver) -> AttachOutcome:
    """Move the recording of ``event_id`` (default: the latest ``call.recording_ready`` of the call)
    into the call's Bitrix24 record. Refuses with CallNotFinished until the Bitrix24 finish is done."""
    call = Call.objects.select_related("portal", "connection").get(pk=call_pk)
    if not call.b24_call_id or call.finished_at is None:
        raise CallNotFinished("the recording waits until the call is finished in Bitrix24", retry_after=60)
    connection = call.connection
    if connection is None or not call.pbx_call_id:
        raise SourceRefused("the call has no PBX connection, so it has no recording to attach")
    event = recording_event(call, event_id)
    source = source_from_payload(event.payload, connection)
    if client is None:
        try:
            client = bitrix24_client_for(call.portal_id)
        except PortalUnavailable as exc:
            raise UploadFailed(f"the portal cannot be called ({exc.status}): {exc.reason or 'see portal status'}") \
                from exc
    conf = recording_settings()
    result = transfer_recording(
        client,
        call=CallInfo(b24_call_id=call.b24_call_id, started_at=call.started_at, direction=call.direction,
                      client_number=call.client_number),
        source=source,
        policy=fetch_policy(connection),
        conf=conf,
        session=getattr(client, "session", None) or requests.Session(),
        resolver=resolver,
    )
    logger.info("recording %s attached to call %s (%s, %d bytes%s)", event.event_id, call.pk, result.filename,
                result.size, f", converted from {result.converted_from}" if result.converted_from else "")
    file_id = result.upload_response.get("FILE_ID") if isinstance(result.upload_response, dict) else None
    return AttachOutcome(event_id=event.event_id, filename=result.filename, size_bytes=result.size,
                         source_sha256=result.source_sha256, converted_from=result.converted_from,
                         file_id=file_id)


def recording_event(call: Call, event_id: str | None) -> PbxEvent:
    events = PbxEvent.objects.filter(connection_id=call.connection_id, call_id=call.pbx_call_id,
                                     type=RECORDING_READY)
    if event_id is not None:
        event = events.filter(event_id=event_id).first()
    else:
        # The state machine's rule: the latest recording (by when it happened on the PBX) wins.
        event = events.order_by("-occurred_at", "-event_id").first()
    if event is None:
        raise SourceRefused(f"no call.recording_ready event {event_id or ''} for this call".replace("  ", " "))
    return event


def source_from_payload(payload: dict[str, Any], connection: PbxConnection) -> RecordingSource:
    common = {
        "content_type": str(payload.get("content_type") or ""),
        "filename": str(payload.get("filename") or ""),
        "sha256": payload.get("sha256") or None,
        "size_bytes": payload.get("size_bytes"),
    }
    if payload.get("url"):
        return RecordingSource(url=str(payload["url"]), **common)
    local = payload.get("local_path")
    if not local:
        raise SourceRefused("the recording event has neither a url nor an uploaded file")
    root = recording_settings().work_dir.resolve()
    path = (root / str(local)).resolve()
    # An uploaded file belongs to the connection that uploaded it (uploads/<public_id>/...).
    if not path.is_relative_to(root / "uploads" / connection.public_id):
        raise SourceRefused("the uploaded recording does not belong to this connection")
    return RecordingSource(local_path=str(path), **common)


def fetch_policy(connection: PbxConnection) -> FetchPolicy:
    return FetchPolicy(allowed_hosts=tuple(sorted(connection.allowed_recording_hosts())),
                       auth_headers=connection.recording_auth_headers())


__all__ = ["AttachOutcome", "attach_recording", "retry_delay"]
