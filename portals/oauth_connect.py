"""Connecting a portal from outside Bitrix24: the OAuth 2.0 authorization-code flow
(docs/bitrix24-contract.md §1.7).

b24client's OAuthApp builds the authorize URL with requests-oauthlib's OAuth2Session (state
included) and exchanges the code with the GET Bitrix24 documents (client_id and client_secret in
the query, secret only ever sent to an allowed OAuth host).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from b24client import errors

from .errors import InstallRejected
from .install import InstallOffer, InstallOutcome, save_install, setup_portal, verify_offer
from .portal_domains import is_portal_host
from .services import oauth_app
from .verification_limits import verification_budget

_HOST = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+(:\d{1,5})?$", re.I)


def portal_base_url(raw: str) -> str:
    """What the admin typed (``acme.bitrix24.com`` or a URL) -> ``https://acme.bitrix24.com``.

    With BITRIX24_ALLOW_HTTP (sandbox) an http URL with a path is accepted too.
    """
    value = (raw or "").strip()
    if not value:
        raise InstallRejected("enter your Bitrix24 address, e.g. yourcompany.bitrix24.com", status=400)
    if "://" not in value:
        value = "https://" + value
    parts = urlsplit(value)
    if (
        parts.scheme not in ("https", "http")
        or not parts.hostname
        or not _HOST.match(parts.netloc)
        or parts.query
        or parts.fragment
    ):
        raise InstallRejected("that is not a Bitrix24 address", status=400)
    if parts.scheme == "http" and not settings.BITRIX24_ALLOW_HTTP:
        raise InstallRejected("Bitrix24 addresses must use https", status=400)
    if not is_portal_host(parts.hostname, parts.port):
        raise InstallRejected(
            "that is not a Bitrix24 address (yourcompany.bitrix24.com, .ru, .de, …; an on-premise Bitrix24 "
            "must be enabled by the service's operator)", status=400)
    path = parts.path.rstrip("/") if settings.BITRIX24_ALLOW_HTTP else ""
    return f"{parts.scheme}://{parts.netloc}{path}"


def authorization_url(portal_input: str) -> tuple[str, str]:
    """(URL to send the browser to, state to keep in the session)."""
    return oauth_app().authorization_url(portal_base_url(portal_input))


def complete_connect(query: Mapping[str, Any], expected_state: str, *, source: str = "") -> InstallOutcome:
    """The redirect back from Bitrix24: check state, exchange the code, verify, store, set up. ``source``:
    the browser's address (``portals.verification_limits``)."""
    app = oauth_app()
    try:
        redirect = app.parse_redirect(query, expected_state)
    except errors.InvalidRequest as exc:
        raise InstallRejected("the sign-in link expired or was not started here; start again", status=400) from exc
    with verification_budget(source, str(redirect.get("member_id") or "")):
        try:
            creds = app.exchange_code(redirect["code"], server_endpoint=redirect["server_domain"] or None)
        except errors.Bitrix24Error as exc:
            raise InstallRejected(f"Bitrix24 refused the sign-in ({exc.code or 'error'}); start again", status=400) from exc
        if redirect["member_id"] and creds.member_id != redirect["member_id"]:
            raise InstallRejected("the authorization belongs to another portal")
        offer = InstallOffer(
            member_id=creds.member_id,
            access_token=creds.access_token,
            refresh_token=creds.refresh_token,
            expires_in=None,
            expires_at=creds.expires_at,
            server_endpoint=creds.server_endpoint,
            scopes=list(creds.scope),
        )
        verified = verify_offer(offer)
    outcome = save_install(verified, connect=True)
    outcome.setup = setup_portal(outcome.portal.pk)
    return outcome
