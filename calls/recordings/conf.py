"""Recording settings, typed. Their defaults are written once, in ``telephony_app.settings``."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class RecordingSettings:
    work_dir: Path
    max_bytes: int
    allow_private_hosts: bool
    allow_http: bool
    private_networks: tuple[str, ...]   # CIDRs allowed even when private hosts are off
    ffmpeg: str                 # command name or path; "" switches conversion off
    connect_timeout: float
    read_timeout: float
    download_deadline: float    # whole transfer, against a PBX that trickles bytes forever
    max_redirects: int
    convert_timeout: float
    upload_timeout: float


def _networks(values) -> tuple[str, ...]:
    try:
        return tuple(str(ipaddress.ip_network(v, strict=False)) for v in values)
    except ValueError as exc:
        raise ImproperlyConfigured(f"RECORDINGS_ALLOWED_PRIVATE_NETWORKS: {exc}") from exc


def recording_settings() -> RecordingSettings:
    return RecordingSettings(
        work_dir=Path(settings.RECORDINGS_DIR),
        max_bytes=int(settings.RECORDING_MAX_BYTES),
        allow_private_hosts=bool(settings.RECORDINGS_ALLOW_PRIVATE_HOSTS),
        allow_http=bool(settings.RECORDINGS_ALLOW_HTTP),
        private_networks=_networks(settings.RECORDINGS_ALLOWED_PRIVATE_NETWORKS),
        ffmpeg=str(settings.RECORDINGS_FFMPEG),
        connect_timeout=float(settings.RECORDING_CONNECT_TIMEOUT),
        read_timeout=float(settings.RECORDING_READ_TIMEOUT),
        download_deadline=float(settings.RECORDING_DOWNLOAD_DEADLINE),
        max_redirects=int(settings.RECORDING_MAX_REDIRECTS),
        convert_timeout=float(settings.RECORDING_CONVERT_TIMEOUT),
        upload_timeout=float(settings.RECORDING_UPLOAD_TIMEOUT),
    )
