"""Reading PHP-ish parameters: forms send strings, JSON sends real types; methods must take both."""

from __future__ import annotations

from typing import Any


def as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "y", "yes", "true", "on"}
    return bool(value)


def as_int(value: Any, default: int | None = None) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


def ci_get(params: dict[str, Any], *names: str) -> Any:
    """First present key among ``names``, compared case-insensitively (Bitrix24 reads both spellings)."""
    lowered = {k.lower(): v for k, v in params.items()}
    for name in names:
        if name.lower() in lowered:
            return lowered[name.lower()]
    return None
