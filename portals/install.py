"""Installing a portal: the installer iframe, ONAPPINSTALL/ONAPPUPDATE, the OAuth connect flow, setup.

Nothing in an install request is trusted until the offered access token has been checked with the
OAuth server's ``app.info`` (it must belong to *our* client_id and to the claimed member_id) and the
token's user is a portal administrator. Only then is anything stored.
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_noop

from b24client import Bitrix24Client, Credentials, errors

from .errors import InstallRejected
from .models import Portal, PortalCredential
from .services import (
    bitrix24_client_for,
    coordination_backend,
    limits_for_plan,
    oauth_app,
    oauth_server_for,
    store_credentials,
)
from .token_store import domain_from_client_endpoint
from .verification_limits import verification_budget

logger = logging.getLogger(__name__)

EVENTS_PATH = "/bitrix24/events/"
# Events the app binds with event.bind (all to /bitrix24/events/). ONAPPINSTALL is not bound: it goes
# to the version card's "installation event handler URL" (also /bitrix24/events/). ONAPPUPDATE is
# bound although real Bitrix24 may deliver it to the installation handler without a binding: an
# update fires it to its binding before removing every binding, so only a bound handler is sure to
# hear it, and handling it twice is harmless (re-store application_token, bind again).
BOUND_EVENTS = ("ONEXTERNALCALLSTART", "ONEXTERNALCALLBACKSTART", "ONAPPUNINSTALL", "ONAPPUPDATE")

_DUPLICATE_BIND = re.compile(r"handler already exist|unable to set event handler", re.I)


def events_handler_url() -> str:
    return settings.APP_BASE_URL.rstrip("/") + EVENTS_PATH


def split_scopes(raw: str | None) -> list[str]:
    # Comma-separated everywhere except the ONAPPINSTALL docs page, which says spaces
    # (docs/bitrix24-contract.md §1.5).
    return [s for s in re.split(r"[\s,]+", raw or "") if s]


@dataclass
class InstallOffer:
    """What an install request claims; untrusted until ``verify_offer`` has passed."""

    member_id: str
    access_token: str
    refresh_token: str
    expires_in: float | None
    server_endpoint: str
    application_token: str = ""
    scopes: list[str] = field(default_factory=list)
    lang: str = ""
    expires_at: float | None = None
    client_endpoint_hint: str = ""


@dataclass
class VerifiedInstall:
    offer: InstallOffer
    client_endpoint: str
    domain: str
    user_id: int | None
    server_endpoint: str


@dataclass
class InstallOutcome:
    portal: Portal
    created: bool
    reinstalled: bool
    credentials_replaced: bool
    setup: SetupReport | None = None


@dataclass
class SetupReport:
    plan: str = ""
    bound: list[str] = field(default_factory=list)
    already_bound: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


class _FixedTokenStore:
    """A token store for a single verification call: the offered token, never refreshed."""

    def __init__(self, creds: Credentials) -> None:
        self.member_id = creds.member_id
        self._creds = creds

    def load(self) -> Credentials:
        return self._creds

    def refresh(self, failed: Credentials, do_refresh: Callable[[Credentials], Credentials]) -> Credentials:
        raise InstallRejected(gettext_noop("the offered access token has expired"), status=403)

    def endpoint_changed(self, new_client_endpoint: str) -> None:
        pass

    def mark_dead(self, reason: str) -> None:
        pass


def _allowed_endpoint(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "https":
        return bool(parts.hostname)
    return parts.scheme == "http" and settings.BITRIX24_ALLOW_HTTP and bool(parts.hostname)


def verify_offer(offer: InstallOffer) -> VerifiedInstall:
    """Check the offered token with the OAuth server's app.info and that its user is an admin."""
    if not offer.member_id or not offer.access_token:
        raise InstallRejected(gettext_noop("member_id and an access token are required"), status=400)
    app = oauth_app(offer.server_endpoint)
    try:
        info = app.app_info(offer.access_token)
    except errors.Bitrix24Error as exc:
        logger.info("install for member %s refused by app.info: %s", offer.member_id, exc.code)
        raise InstallRejected(gettext_noop("the access token was not accepted by the Bitrix24 OAuth server")) from exc
    install = info.get("install") or {}
    client_id = str(info.get("client_id") or "")
    if not hmac.compare_digest(client_id.encode(), settings.BITRIX24_CLIENT_ID.encode()):
        raise InstallRejected(gettext_noop("the access token belongs to another application"))
    if not hmac.compare_digest(str(install.get("member_id") or "").encode(), offer.member_id.encode()):
        raise InstallRejected(gettext_noop("the access token belongs to another portal"))
    client_endpoint = str(install.get("client_endpoint") or "")
    if not client_endpoint and install.get("domain"):
        client_endpoint = f"https://{install['domain']}/rest/"
    if not client_endpoint or not _allowed_endpoint(client_endpoint):
        raise InstallRejected(gettext_noop("the OAuth server did not name a usable portal endpoint"), status=400)
    user_id = info.get("user_id")
    verified = VerifiedInstall(
        offer=offer,
        client_endpoint=client_endpoint,
        # From the endpoint, not install.domain: the sandbox's path-based hosts put a path in "domain".
        domain=domain_from_client_endpoint(client_endpoint) or str(install.get("domain") or ""),
        user_id=int(user_id) if str(user_id or "").isdigit() else None,
        server_endpoint=oauth_server_for(offer.server_endpoint).rstrip("/") + "/rest/",
    )
    if not _is_admin(verified):
        raise InstallRejected(gettext_noop("only a Bitrix24 administrator can install or connect the app"))
    return verified


def _is_admin(verified: VerifiedInstall) -> bool:
    offer = verified.offer
    creds = Credentials(
        access_token=offer.access_token,
        refresh_token=offer.refresh_token,
        expires_at=None,
        client_endpoint=verified.client_endpoint,
        server_endpoint=verified.server_endpoint,
        member_id=offer.member_id,
        user_id=verified.user_id,
    )
    client = Bitrix24Client(
        _FixedTokenStore(creds),
        oauth=oauth_app(verified.server_endpoint),
        limiter=None,
        timeout=settings.BITRIX24_HTTP_TIMEOUT,
        allow_http=settings.BITRIX24_ALLOW_HTTP,
    )
    try:
        result = client.call("user.admin").result
    except errors.Bitrix24Error as exc:
        logger.info("user.admin failed while installing member %s: %s", offer.member_id, exc.code)
        raise InstallRejected(gettext_noop("could not check the user's rights")) from exc
    return result is True or str(result).lower() in {"1", "true", "y"}


def save_install(verified: VerifiedInstall, *, update: bool = False, connect: bool = False) -> InstallOutcome:
    """Create or update the portal from a verified install. Idempotent for repeated deliveries.

    The token chain is replaced only when there is reason to: a new portal, a reinstall (new
    application_token), a portal whose tokens are dead/purged, or an admin explicitly reconnecting
    through the OAuth flow (``connect``). A repeated ONAPPINSTALL must not
    put back a refresh token that was already used (Bitrix24 would answer invalid_grant forever).

    The installer page's POST and ONAPPINSTALL often arrive together for a portal not seen before: both
    find no row, both insert it. The loser of that race takes the portal as created (by the other) and
    updates it like any existing one.
    """
    try:
        return _save_install(verified, update=update, connect=connect)
    except _CreatedMeanwhile:
        return _save_install(verified, update=update, connect=connect)


class _CreatedMeanwhile(Exception):
    """Another request inserted the portal between this one's read and its insert."""


def _save_install(verified: VerifiedInstall, *, update: bool, connect: bool) -> InstallOutcome:
    offer = verified.offer
    now = timezone.now()
    with transaction.atomic():
        portal = Portal.objects.select_for_update().filter(member_id=offer.member_id).first()
        created = portal is None
        if created:
            _plan, capacity, drain = limits_for_plan("")
            portal = Portal(member_id=offer.member_id, rate_capacity=capacity, rate_drain=drain, plan="")
        reinstalled = (
            not created
            and bool(offer.application_token)
            and not hmac.compare_digest(portal.application_token or "", offer.application_token)
        )
        has_credential = not created and PortalCredential.objects.filter(portal=portal).exists()
        replace = connect or created or reinstalled or not has_credential or portal.status != Portal.Status.ACTIVE
        # ONAPPUPDATE normally carries no refresh token: it re-stores application_token only.
        replace = replace and bool(offer.refresh_token)
        if created or (not (update or connect) and (reinstalled or portal.status == Portal.Status.UNINSTALLED)):
            portal.installed_at = now
            portal.install_finished = False
            portal.uninstalled_at = None
        portal.domain = verified.domain
        portal.client_endpoint = verified.client_endpoint
        portal.server_endpoint = verified.server_endpoint
        if offer.application_token:
            portal.application_token = offer.application_token
        if offer.scopes:
            portal.scopes = offer.scopes
        if offer.lang:
            portal.lang = offer.lang[:8]
        if portal.status != Portal.Status.ACTIVE and (replace or has_credential):
            portal.status = Portal.Status.ACTIVE
            portal.dead_reason = ""
            portal.status_changed_at = now
        if created:
            try:
                with transaction.atomic():  # a savepoint: the conflict leaves the outer transaction usable
                    portal.save(force_insert=True)
            except IntegrityError as exc:
                if not Portal.objects.filter(member_id=offer.member_id).exists():
                    raise
                raise _CreatedMeanwhile from exc
        else:
            portal.save()
        if replace:
            expires_at = offer.expires_at or (time.time() + offer.expires_in if offer.expires_in else None)
            store_credentials(
                portal,
                Credentials(
                    access_token=offer.access_token,
                    refresh_token=offer.refresh_token,
                    expires_at=expires_at,
                    client_endpoint=verified.client_endpoint,
                    server_endpoint=verified.server_endpoint,
                    member_id=offer.member_id,
                    user_id=verified.user_id,
                    scope=tuple(offer.scopes),
                ),
            )
    logger.info(
        "portal %s (%s) install saved: created=%s reinstalled=%s tokens_replaced=%s",
        portal.pk, portal.domain, created, reinstalled, replace,
    )
    return InstallOutcome(portal=portal, created=created, reinstalled=reinstalled, credentials_replaced=replace)


def _is_duplicate_bind(exc: errors.Bitrix24Error) -> bool:
    if exc.code.upper() == "ERROR_HANDLER_ALREADY_EXIST":
        return True
    return bool(_DUPLICATE_BIND.search(exc.description or ""))


def setup_portal(portal_id: int) -> SetupReport:
    """Read the plan (rate limits) and bind the event handlers that are not bound yet.

    Both the installer page and ONAPPINSTALL set a portal up (either may come first, §1.5): under a
    per-portal lock, whichever runs second finds the bindings in ``event.get`` and binds nothing, so
    every event is bound once per install (an update removes the bindings: it binds them again).
    """
    report = SetupReport()
    client = bitrix24_client_for(portal_id)
    info = client.call("app.info").result or {}
    plan, capacity, drain = limits_for_plan(str(info.get("LICENSE_FAMILY") or ""))
    Portal.objects.filter(pk=portal_id).update(plan=plan, rate_capacity=capacity, rate_drain=drain)
    report.plan = plan
    client = bitrix24_client_for(portal_id)  # rebuilt with the plan's limits
    handler = events_handler_url()
    with coordination_backend().lock(f"portal-setup:{portal_id}", timeout=120, wait=120):
        _bind_missing(client, portal_id, handler, report)
    return report


def _bind_missing(client: Bitrix24Client, portal_id: int, handler: str, report: SetupReport) -> None:
    bindings = client.call("event.get").result or []
    bound = {str(row.get("event") or "").upper() for row in bindings
             if isinstance(row, dict) and row.get("handler") == handler}
    for event in BOUND_EVENTS:
        if event in bound:
            report.already_bound.append(event)
            continue
        try:
            client.call("event.bind", {"event": event, "handler": handler})
        except errors.InvalidRequest as exc:
            if _is_duplicate_bind(exc):
                report.already_bound.append(event)
                continue
            logger.warning("event.bind %s failed for portal %s: %s", event, portal_id, exc)
            report.failed[event] = f"{exc.code}: {exc.description}"
        else:
            report.bound.append(event)


def install_from_iframe(fields: Mapping[str, str], *, source: str = "") -> InstallOutcome:
    """The installer page POST (§1.3): verify, store, set up. ``source``: the sender's address
    (``portals.verification_limits``)."""
    expires_in = _float_or_none(fields.get("AUTH_EXPIRES"))
    offer = InstallOffer(
        member_id=(fields.get("member_id") or "").strip(),
        access_token=(fields.get("AUTH_ID") or "").strip(),
        refresh_token=(fields.get("REFRESH_ID") or "").strip(),
        expires_in=expires_in,
        server_endpoint=(fields.get("SERVER_ENDPOINT") or "").strip(),
        application_token=(fields.get("APPLICATION_TOKEN") or "").strip(),
        scopes=split_scopes(fields.get("APPLICATION_SCOPE")),
        lang=(fields.get("LANG") or "").strip(),
    )
    if not offer.refresh_token:
        raise InstallRejected(gettext_noop("REFRESH_ID is required to install"), status=400)
    with verification_budget(source, offer.member_id):
        verified = verify_offer(offer)
    outcome = save_install(verified)
    outcome.setup = setup_portal(outcome.portal.pk)
    return outcome


def offer_from_event_auth(auth: Mapping[str, Any], data: Mapping[str, Any]) -> InstallOffer:
    """ONAPPINSTALL / ONAPPUPDATE ``auth[...]`` block -> offer."""
    return InstallOffer(
        member_id=str(auth.get("member_id") or "").strip(),
        access_token=str(auth.get("access_token") or "").strip(),
        refresh_token=str(auth.get("refresh_token") or "").strip(),
        expires_in=_float_or_none(auth.get("expires_in")),
        expires_at=_float_or_none(auth.get("expires")),
        server_endpoint=str(auth.get("server_endpoint") or "").strip(),
        application_token=str(auth.get("application_token") or "").strip(),
        scopes=split_scopes(str(auth.get("scope") or "")),
        lang=str(data.get("LANGUAGE_ID") or "").strip(),
        client_endpoint_hint=str(auth.get("client_endpoint") or ""),
    )


def _float_or_none(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
