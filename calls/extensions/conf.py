"""Settings of the extension directory, typed. Their defaults are written once, in ``telephony_app.settings``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings


@dataclass(frozen=True)
class ExtensionSettings:
    ttl: timedelta  # the directory is read again from Bitrix24 when older than this
    miss_interval: timedelta  # an unknown extension or user re-reads it, at most this often per portal


def extension_settings() -> ExtensionSettings:
    return ExtensionSettings(
        ttl=timedelta(seconds=int(settings.CALLS_EXTENSIONS_TTL)),
        miss_interval=timedelta(seconds=int(settings.CALLS_EXTENSIONS_MISS_INTERVAL)),
    )
