"""Console settings with their defaults in one place (telephony_app.settings may override)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings


@dataclass(frozen=True)
class ConsoleSettings:
    pbx_silent_after: timedelta       # an enabled connection with no event for this long is "silent"
    extensions_stale_after: timedelta  # an extension map not synced for this long is "stale"
    window: timedelta                 # how far back failures, 429s and issues are counted
    page_size: int


def console_settings() -> ConsoleSettings:
    ttl = int(getattr(settings, "CALLS_EXTENSIONS_TTL", 600))
    return ConsoleSettings(
        pbx_silent_after=timedelta(hours=float(getattr(settings, "CONSOLE_PBX_SILENT_HOURS", 24))),
        extensions_stale_after=timedelta(seconds=float(getattr(settings, "CONSOLE_EXTENSIONS_STALE_SECONDS", 6 * ttl))),
        window=timedelta(hours=float(getattr(settings, "CONSOLE_WINDOW_HOURS", 24))),
        page_size=int(getattr(settings, "CONSOLE_PAGE_SIZE", 100)),
    )
