"""Recording settings with their defaults in one place (telephony_app.settings may override)."""

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
    allow_private = bool(getattr(settings, "RECORDINGS_ALLOW_PRIVATE_HOSTS", False))
    return RecordingSettings(
        work_dir=Path(settings.RECORDINGS_DIR),
        max_bytes=int(settings.RECORDING_MAX_BYTES),
        allow_private_hosts=allow_private,
        allow_http=bool(getattr(settings, "RECORDINGS_ALLOW_HTTP", allow_private)),
        private_networks=_networks(getattr(settings, "RECORDINGS_ALLOWED_PRIVATE_NETWORKS", ())),
        ffmpeg=str(getattr(settings, "RECORDINGS_FFMPEG", "ffmpeg")),
        connect_timeout=float(getattr(settings, "RECORDING_CONNECT_TIMEOUT", 10)),
        read_timeout=float(getattr(settings, "RECORDING_READ_TIMEOUT", 60)),
        download_deadline=float(getattr(settings, "RECORDING_DOWNLOAD_DEADLINE", 900)),
        max_redirects=int(getattr(settings, "RECORDING_MAX_REDIRECTS", 3)),
        convert_timeout=float(getattr(settings, "RECORDING_CONVERT_TIMEOUT", 900)),
        upload_timeout=float(getattr(settings, "RECORDING_UPLOAD_TIMEOUT", 600)),
    )
