"""Settings of the PBX API, typed. Their defaults are written once, in ``telephony_app.settings``."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


@dataclass(frozen=True)
class PbxApiSettings:
    auth_cache_seconds: float  # auth material kept in process memory at most this long
    route_receipts_in_cache: bool  # /route's webhook-id receipts in the cache (Redis), not the database


def pbx_api_settings() -> PbxApiSettings:
    where = settings.PBX_ROUTE_RECEIPTS
    if where not in ("cache", "database"):
        raise ImproperlyConfigured(f"PBX_ROUTE_RECEIPTS must be 'cache' or 'database', not {where!r}")
    return PbxApiSettings(
        auth_cache_seconds=float(settings.PBX_AUTH_CACHE_SECONDS),
        route_receipts_in_cache=where == "cache",
    )
