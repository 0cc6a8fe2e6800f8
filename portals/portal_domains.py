"""Which hosts are Bitrix24 portals: the only places we send a browser to (the OAuth connect flow).

A cloud portal is one DNS label under one of Bitrix24's regional zones (``acme.bitrix24.de``); an
on-premise Bitrix24 lives wherever its owner put it, so those hosts are the vendor's explicit list
(``BITRIX24_ONPREMISE_HOSTS``: ``host``, ``host:port`` or ``*.domain``). Anything else typed into
``/bitrix24/oauth/start/?portal=`` is refused: the page must not be an open redirect.
"""

from __future__ import annotations

from django.conf import settings


def is_portal_host(hostname: str, port: int | None = None) -> bool:
    host = (hostname or "").lower().rstrip(".")
    if not host:
        return False
    for zone in settings.BITRIX24_CLOUD_ZONES:
        zone = zone.lower().strip(".")
        label = host.removesuffix("." + zone)
        if label != host and label and "." not in label:
            return True
    for entry in settings.BITRIX24_ONPREMISE_HOSTS:
        entry = entry.lower().strip()
        if entry.startswith("*."):
            if host.endswith(entry[1:]):
                return True
        elif entry in (host, f"{host}:{port}"):
            return True
    return False
