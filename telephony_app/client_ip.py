"""The address a request came from, as one policy for everything that counts per source (admin login
throttling, the rate limit on unauthenticated Bitrix24 verification requests).

Behind ``TRUSTED_PROXY_HOPS`` reverse proxies that each append to ``X-Forwarded-For``, the client is the
entry the outermost trusted proxy added (that many from the right); entries further left are whatever the
client sent and are never believed. With no trusted proxy it is ``REMOTE_ADDR``.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    hops = int(getattr(settings, "TRUSTED_PROXY_HOPS", 0))
    remote = request.META.get("REMOTE_ADDR", "") or ""
    if hops <= 0:
        return remote
    chain = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    return chain[-hops] if len(chain) >= hops else remote
