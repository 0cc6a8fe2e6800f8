"""The viewer's language: Bitrix24's ``LANG`` mapped to ours (the rule lives with the frame fields)."""

from portals.iframe import FALLBACK_LANGUAGE as FALLBACK
from portals.iframe import FRAME_LANGUAGES as SUPPORTED
from portals.iframe import frame_language

__all__ = ["FALLBACK", "SUPPORTED", "frame_language"]
