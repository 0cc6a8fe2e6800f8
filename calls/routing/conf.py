"""Settings of ``/route``, typed. Their defaults are written once, in ``telephony_app.settings``."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class RouteSettings:
    lookup_deadline: float  # how long a call waits for Bitrix24 before the line's fallback answers
    slow_seconds: int  # after a miss of the deadline, calls skip Bitrix24 this long
    cache_seconds: int  # CRM lookups and answers stay cached this long
    lookup_threads: int  # lookups running at once per process


def route_settings() -> RouteSettings:
    return RouteSettings(
        lookup_deadline=float(settings.ROUTE_LOOKUP_DEADLINE),
        slow_seconds=int(settings.ROUTE_SLOW_SECONDS),
        cache_seconds=int(settings.ROUTE_CACHE_SECONDS),
        lookup_threads=int(settings.ROUTE_LOOKUP_THREADS),
    )
