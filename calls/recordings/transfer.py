"""The whole move of one recording: get the bytes, make them wav/mp3, upload to Bitrix24.

Framework-free below ``services``: it takes a REST client, a source and a per-connection
fetch policy, so it can be driven by the state machine, a management command or a benchmark.
Temp files (download, conversion) live under settings.RECORDINGS_DIR/tmp and are removed
whatever happens; a PBX-uploaded source file is never deleted here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import requests

from .addresses import Resolver, system_resolver
from .conf import RecordingSettings
from .download import FetchLimits, FetchPolicy, download_recording, safe_url_for_log
from .errors import SourceRefused
from .formats import MIME, prepare_for_bitrix24
from .local import open_local_recording
from .upload import RestClient, make_filename, upload_recording

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordingSource:
    """Where the bytes are: a PBX URL (``call.recording_ready``) or a file the PBX uploaded."""

    url: str = ""
    local_path: str = ""
    content_type: str = ""
    filename: str = ""
    sha256: str | None = None
    size_bytes: int | None = None

    def __post_init__(self) -> None:
        if bool(self.url) == bool(self.local_path):
            raise ValueError("a recording source needs exactly one of url or local_path")


@dataclass(frozen=True)
class CallInfo:
    b24_call_id: str
    started_at: datetime | None
    direction: str
    client_number: str


@dataclass(frozen=True)
class TransferResult:
    filename: str
    size: int              # bytes uploaded
    source_size: int       # bytes received from the PBX
    source_sha256: str
    converted_from: str | None
    upload_response: object


def fetch_limits(conf: RecordingSettings) -> FetchLimits:
    return FetchLimits(
        max_bytes=conf.max_bytes, allow_private=conf.allow_private_hosts, allow_http=conf.allow_http,
        connect_timeout=conf.connect_timeout, read_timeout=conf.read_timeout,
        deadline=conf.download_deadline, max_redirects=conf.max_redirects,
        private_networks=conf.private_networks,
    )


def transfer_recording(client: RestClient, *, call: CallInfo, source: RecordingSource, policy: FetchPolicy,
                       conf: RecordingSettings, session: requests.Session | None = None,
                       expected_origin: str | None = None, resolver: Resolver = system_resolver,
                       limits: FetchLimits | None = None) -> TransferResult:
    tmp_dir = conf.work_dir / "tmp"
    owned: list[Path] = []
    try:
        if source.url:
            if not policy.allowed_hosts:
                raise SourceRefused(
                    "this connection has no allowed recording hosts; set its originate URL or recording hosts"
                )
            got = download_recording(
                source.url, policy=policy, limits=limits or fetch_limits(conf), dest_dir=tmp_dir,
                expected_sha256=source.sha256, expected_size=source.size_bytes, resolver=resolver,
            )
            owned.append(got.path)
            path, size, sha = got.path, got.size, got.sha256
            content_type = source.content_type or got.content_type
            logger.info("recording for %s downloaded from %s (%d bytes)", call.b24_call_id,
                        safe_url_for_log(source.url), size)
        else:
            local = open_local_recording(source.local_path, root=conf.work_dir, max_bytes=conf.max_bytes,
                                         expected_sha256=source.sha256, expected_size=source.size_bytes)
            path, size, sha = local.path, local.size, local.sha256
            content_type = source.content_type
        audio = prepare_for_bitrix24(path, content_type=content_type, filename=source.filename,
                                     ffmpeg_setting=conf.ffmpeg, work_dir=tmp_dir, timeout=conf.convert_timeout)
        if audio.owned:
            owned.append(audio.path)
        filename = make_filename(started_at=call.started_at, direction=call.direction,
                                 number=call.client_number, unique=call.b24_call_id, extension=audio.extension)
        uploaded = upload_recording(
            client, b24_call_id=call.b24_call_id, path=audio.path, filename=filename,
            mime=MIME[audio.extension], session=session, expected_origin=expected_origin,
            timeout=(conf.connect_timeout, conf.upload_timeout),
        )
        return TransferResult(filename=filename, size=uploaded.size, source_size=size, source_sha256=sha,
                              converted_from=audio.converted_from, upload_response=uploaded.response)
    finally:
        for p in owned:
            p.unlink(missing_ok=True)
