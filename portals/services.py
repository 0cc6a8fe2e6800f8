"""Write-side services for portals: the Bitrix24 client factory, token and status changes, the REST log.

``bitrix24_client_for(portal_id)`` is the only way code gets a Bitrix24 client.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.utils import timezone

from b24client import Bitrix24Client, Credentials, OAuthApp, coordination

from . import rest_log
from .errors import PortalUnavailable
from .models import Portal, PortalCredential, RestCallLog
from .selectors import oauth_base_from_server_endpoint
from .token_store import PortalTokenStore, credentials_for, mark_portal_dead, write_credentials

__all__ = [
    "PortalUnavailable",
    "bitrix24_client_for",
    "coordination_backend",
    "limits_for_plan",
    "mark_portal_dead",
    "oauth_app",
    "prune_rest_call_log",
    "store_credentials",
]

logger = logging.getLogger(__name__)

# Bitrix24's leaky bucket per plan (docs/bitrix24-contract.md §3.1): (burst capacity, drain per second).
PLAN_LIMITS = {"enterprise": (250.0, 5.0), "standard": (50.0, 2.0)}

_local = threading.local()


@lru_cache(maxsize=4)
def _coordination_for(url: str, socket_timeout: float, socket_connect_timeout: float):
    return coordination.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=socket_connect_timeout)


def coordination_backend():
    """The cross-process locks + leaky bucket (Redis, or file locks under var/ when no Redis)."""
    return _coordination_for(settings.COORDINATION_URL, settings.REDIS_SOCKET_TIMEOUT,
                             settings.REDIS_SOCKET_CONNECT_TIMEOUT)


def _session() -> requests.Session:
    # One keep-alive session per thread: requests.Session is not documented as thread-safe.
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    return session


def limits_for_plan(license_family: str) -> tuple[str, float, float]:
    """LICENSE_FAMILY from portal-side app.info -> (plan, capacity, drain) with our head-room applied."""
    family = (license_family or "").lower()
    plan = "enterprise" if family.startswith("ent") else "standard"
    capacity, drain = PLAN_LIMITS[plan]
    headroom = settings.BITRIX24_RATE_HEADROOM
    return plan, max(1.0, capacity * headroom), max(0.1, drain * headroom)


def oauth_server_for(server_endpoint: str | None) -> str:
    """The OAuth server a portal uses, if it is one we trust with our client_secret."""
    if server_endpoint:
        base = oauth_base_from_server_endpoint(server_endpoint)
        parts = urlsplit(base)
        scheme_ok = parts.scheme == "https" or (parts.scheme == "http" and settings.BITRIX24_ALLOW_HTTP)
        if scheme_ok and parts.hostname in set(settings.BITRIX24_OAUTH_HOSTS):
            return base
        logger.warning("ignoring untrusted OAuth server %s; using %s", parts.hostname, settings.BITRIX24_OAUTH_SERVER)
    return settings.BITRIX24_OAUTH_SERVER


def oauth_app(server_endpoint: str | None = None, portal_id: int | None = None) -> OAuthApp:
    allowed = set(settings.BITRIX24_OAUTH_HOSTS) | {urlsplit(settings.BITRIX24_OAUTH_SERVER).hostname or ""}
    return OAuthApp(
        settings.BITRIX24_CLIENT_ID,
        settings.BITRIX24_CLIENT_SECRET,
        oauth_server=oauth_server_for(server_endpoint),
        allowed_hosts={h for h in allowed if h},
        allow_http=settings.BITRIX24_ALLOW_HTTP,
        session=_session(),
        timeout=settings.BITRIX24_HTTP_TIMEOUT,
        recorder=rest_call_recorder(portal_id),
    )


def rest_call_recorder(portal_id: int | None):
    def record(entry: dict[str, Any]) -> None:
        rest_log.record(portal_id, entry)

    return record


def bitrix24_client_for(portal_id: int, *, portal: Portal | None = None) -> Bitrix24Client:
    """A Bitrix24 REST client for one portal: its token chain, OAuth server, rate limit and request log.

    ``portal``: the portal's row, read just now together with its ``credential`` (``select_related``),
    when the caller has it: spares reading them again.
    Raises PortalUnavailable when the portal is uninstalled, its tokens are dead or it is unpaid.
    """
    if portal is not None and portal.pk == portal_id and Portal.credential.is_cached(portal):
        cred = getattr(portal, "credential", None)
    else:
        # One query for the portal and its token pair: the first request needs the tokens anyway.
        cred = PortalCredential.objects.select_related("portal").filter(portal_id=portal_id).first()
        portal = cred.portal if cred is not None else Portal.objects.get(pk=portal_id)
    if not portal.is_callable:
        raise PortalUnavailable(portal.pk, portal.status, portal.dead_reason)
    if cred is None:
        raise PortalUnavailable(portal.pk, portal.status, "no OAuth tokens stored")
    backend = coordination_backend()
    return Bitrix24Client(
        PortalTokenStore(portal, coordination=backend, credentials=credentials_for(portal, cred)),
        oauth=oauth_app(portal.server_endpoint, portal.pk),
        limiter=backend,
        limits=(portal.rate_capacity, portal.rate_drain),
        session=_session(),
        recorder=rest_call_recorder(portal.pk),
        timeout=settings.BITRIX24_HTTP_TIMEOUT,
        allow_http=settings.BITRIX24_ALLOW_HTTP,
    )


def store_credentials(portal: Portal, creds: Credentials) -> PortalCredential:
    """Replace the portal's token chain (install, reinstall, reconnect). Call inside a transaction."""
    cred = PortalCredential.objects.select_for_update().filter(portal=portal).first()
    if cred is None:
        cred = PortalCredential(portal=portal)
    write_credentials(cred, creds)
    cred.user_id = creds.user_id
    cred.save()
    return cred


def purge_credentials(portal: Portal) -> None:
    PortalCredential.objects.filter(portal=portal).delete()


def prune_rest_call_log(now=None) -> int:
    """Delete REST log entries older than BITRIX24_REST_LOG_DAYS (never less than the 3 days Marketplace asks)."""
    days = max(3, settings.BITRIX24_REST_LOG_DAYS)
    cutoff = (now or timezone.now()) - timedelta(days=days)
    deleted, _ = RestCallLog.objects.filter(created_at__lt=cutoff).delete()
    return deleted
