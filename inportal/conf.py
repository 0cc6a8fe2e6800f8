"""Settings of the in-portal app with their defaults in one place (telephony_app.settings may override)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings


@dataclass(frozen=True)
class InportalSettings:
    session_seconds: int  # lifetime of a frame session token (the page refreshes it with a fresh AUTH_ID)
    api_base: str  # where the page finds the API (the shell tells the frontend)
    pbx_silent_hours: int  # the PBX's last signed request older than this turns its status amber
    help_dir: Path  # the setup instruction, setup.<lang>.md: the same text as the Marketplace card


def inportal_settings() -> InportalSettings:
    return InportalSettings(
        session_seconds=int(getattr(settings, "INPORTAL_SESSION_SECONDS", 3600)),
        api_base="/bitrix24/app/api/v1/",
        pbx_silent_hours=int(getattr(settings, "INPORTAL_PBX_SILENT_HOURS", 24)),
        help_dir=Path(getattr(settings, "INPORTAL_HELP_DIR", settings.BASE_DIR / "docs" / "marketplace")),
    )
