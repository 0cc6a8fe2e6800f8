"""The viewer's language: Bitrix24's ``LANG`` (the user's interface language) mapped to ours."""

from __future__ import annotations

SUPPORTED = ("ru", "en")
FALLBACK = "en"


def frame_language(lang: str | None) -> str:
    """``ru`` for Russian, English for every other Bitrix24 language (de, ua, kz, br, …)."""
    code = (lang or "").strip().lower().replace("_", "-").split("-", 1)[0]
    return code if code in SUPPORTED else FALLBACK
