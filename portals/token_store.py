"""PortalTokenStore: b24client's TokenStore backed by PortalCredential, safe across processes.

Bitrix24 rotates refresh tokens: a refresh token works once, and a second refresh with it gets
``invalid_grant``. So refreshes for one portal are serialised by a coordination lock that holds
across processes and machines (Redis, or file locks on one machine) *and* by a row lock on
PostgreSQL; whoever gets the lock second re-reads the row and uses the token the winner stored.

A store hands out the pair it loaded for a few seconds (``CREDENTIALS_REUSE_SECONDS``) instead of
reading and decrypting the row before every request of one task. A pair another process replaced
meanwhile is not lost: Bitrix24 answers ``expired_token``/``invalid_token``, the client calls
``refresh``, which finds the stored pair changed and returns it without refreshing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import urlsplit

from django.db import transaction
from django.utils import timezone

from b24client import Credentials, errors

from .errors import PortalUnavailable
from .models import Portal, PortalCredential

logger = logging.getLogger(__name__)

REFRESH_LOCK_TIMEOUT = 60.0  # seconds the lock may be held (a refresh is one HTTP call with a 15 s timeout)
REFRESH_LOCK_WAIT = 90.0  # seconds a loser waits for the winner
CREDENTIALS_REUSE_SECONDS = 5.0  # how long a loaded pair is used before the row is read again


def _to_epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value else None


def _from_epoch(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value else None


def domain_from_client_endpoint(client_endpoint: str) -> str:
    """``https://acme.bitrix24.com/rest/`` -> ``acme.bitrix24.com``.

    The sandbox in server mode addresses portals by path (``http://127.0.0.1:8001/portal/acme.test/rest/``);
    there the portal's domain is the last path segment before ``rest``.
    """

    parts = urlsplit(client_endpoint)
    segments = [s for s in parts.path.split("/") if s]
    if segments and segments[-1] == "rest":
        segments = segments[:-1]
    if len(segments) >= 2 and segments[-2] == "portal":
        return segments[-1]
    return parts.hostname or ""


def credentials_for(portal: Portal, cred: PortalCredential) -> Credentials:
    return Credentials(
        access_token=cred.access_token,
        refresh_token=cred.refresh_token,
        expires_at=_to_epoch(cred.expires_at),
        client_endpoint=portal.client_endpoint,
        server_endpoint=portal.server_endpoint,
        member_id=portal.member_id,
        user_id=cred.user_id,
        scope=tuple(portal.scopes or ()),
    )


def write_credentials(cred: PortalCredential, new: Credentials) -> None:
    cred.access_token = new.access_token
    cred.refresh_token = new.refresh_token
    cred.expires_at = _from_epoch(new.expires_at)
    if new.user_id is not None:
        cred.user_id = new.user_id


def dead_status_for(reason: str) -> str:
    if "PAYMENT_REQUIRED" in reason.upper():
        return Portal.Status.PAYMENT_REQUIRED
    return Portal.Status.TOKENS_DEAD


def mark_portal_dead(portal_id: int, reason: str) -> bool:
    """Stop calling a portal whose tokens no longer work. Returns True when the status changed."""
    changed = Portal.objects.filter(pk=portal_id, status=Portal.Status.ACTIVE).update(
        status=dead_status_for(reason),
        dead_reason=reason[:255],
        status_changed_at=timezone.now(),
    )
    if changed:
        logger.warning("portal %s marked unavailable: %s", portal_id, reason)
    return bool(changed)


class PortalTokenStore:
    """One portal's token chain. Build it through ``portals.services.bitrix24_client_for``."""

    def __init__(self, portal: Portal, *, coordination, credentials: Credentials | None = None) -> None:
        """``credentials``: the pair just read with ``portal`` (saves the first request a read)."""
        self.portal_id = portal.pk
        self.member_id = portal.member_id
        self._coordination = coordination
        self._loaded: Credentials | None = None
        self._loaded_at = 0.0
        if credentials is not None:
            self._keep(credentials)

    def _keep(self, creds: Credentials) -> Credentials:
        self._loaded, self._loaded_at = creds, time.monotonic()
        return creds

    def _forget(self) -> None:
        self._loaded = None

    def _row(self) -> tuple[Portal, PortalCredential]:
        cred = PortalCredential.objects.select_related("portal").filter(portal_id=self.portal_id).first()
        if cred is None:
            portal = Portal.objects.get(pk=self.portal_id)
            raise PortalUnavailable(portal.pk, portal.status, portal.dead_reason or "no OAuth tokens stored")
        return cred.portal, cred

    def load(self) -> Credentials:
        if self._loaded is not None and time.monotonic() - self._loaded_at < CREDENTIALS_REUSE_SECONDS:
            return self._loaded
        self._forget()
        portal, cred = self._row()
        if not portal.is_callable:
            raise PortalUnavailable(portal.pk, portal.status, portal.dead_reason)
        return self._keep(credentials_for(portal, cred))

    def refresh(self, failed: Credentials, do_refresh: Callable[[Credentials], Credentials]) -> Credentials:
        self._forget()
        return self._keep(self._refresh(failed, do_refresh))

    def _refresh(self, failed: Credentials, do_refresh: Callable[[Credentials], Credentials]) -> Credentials:
        dead: errors.TokenDead | None = None
        with self._coordination.lock(
            f"b24-token-refresh:{self.member_id}", timeout=REFRESH_LOCK_TIMEOUT, wait=REFRESH_LOCK_WAIT
        ):
            with transaction.atomic():
                # select_for_update is the second fence on PostgreSQL (a no-op on SQLite, where the
                # IMMEDIATE transaction already takes the write lock).
                cred = (
                    PortalCredential.objects.select_for_update()
                    .select_related("portal")
                    .filter(portal_id=self.portal_id)
                    .first()
                )
                if cred is None:
                    portal = Portal.objects.get(pk=self.portal_id)
                    raise PortalUnavailable(portal.pk, portal.status, portal.dead_reason or "tokens purged")
                stored = credentials_for(cred.portal, cred)
                if stored.access_token != failed.access_token:
                    # Another process refreshed while we waited: its token is ours now.
                    return stored
                if not cred.portal.is_callable:
                    raise PortalUnavailable(cred.portal.pk, cred.portal.status, cred.portal.dead_reason)
                try:
                    new = do_refresh(stored)
                except errors.TokenDead as exc:
                    dead = exc
                else:
                    write_credentials(cred, new)
                    cred.refreshed_count += 1
                    cred.save()
                    new_endpoint = new.client_endpoint or cred.portal.client_endpoint
                    if new_endpoint != cred.portal.client_endpoint:
                        self._save_endpoint(new_endpoint)
                    return credentials_for(Portal.objects.get(pk=self.portal_id), cred)
        assert dead is not None
        self.mark_dead(f"{dead.code or 'token_dead'}: {dead.description or 'refresh refused'}")
        raise dead

    def endpoint_changed(self, new_client_endpoint: str) -> None:
        self._save_endpoint(new_client_endpoint)
        if self._loaded is not None:
            self._loaded = replace(self._loaded, client_endpoint=new_client_endpoint)

    def _save_endpoint(self, new_client_endpoint: str) -> None:
        domain = domain_from_client_endpoint(new_client_endpoint)
        Portal.objects.filter(pk=self.portal_id).update(
            client_endpoint=new_client_endpoint, domain=domain or Portal.objects.get(pk=self.portal_id).domain
        )
        logger.info("portal %s moved to %s", self.portal_id, domain)

    def mark_dead(self, reason: str) -> None:
        self._forget()
        mark_portal_dead(self.portal_id, reason)
