"""Who is looking at the app frame: Bitrix24 asked with the viewer's own ``AUTH_ID``.

The frame receives the viewing user's access token (``AUTH_ID``; the JS SDK hands out fresh ones).
Whatever the app's own stored token may do, a change made from the frame must be the viewer's, so
the viewer's token itself is sent to ``user.current`` + ``user.admin`` (one ``batch``): it belongs to
this portal (Bitrix24 refuses another portal's token at this endpoint), names its user, and says
whether that user may manage the app. It is never stored and never refreshed.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from b24client import Bitrix24Client, Credentials, errors

from .models import Portal
from .services import coordination_backend, oauth_app, rest_call_recorder
from .verification_limits import verification_budget

logger = logging.getLogger(__name__)


class ViewerRejected(Exception):
    """The offered AUTH_ID does not prove a viewer of this portal (``code`` for the API's answer)."""

    def __init__(self, code: str, message: str, *, status: int = 403) -> None:
        self.code = code
        self.status = status
        super().__init__(message)


@dataclass(frozen=True)
class Viewer:
    user_id: int
    name: str
    is_admin: bool
    photo: str = ""


class _ViewerTokenStore:
    """The viewer's token for the calls of one request: never refreshed, never persisted."""

    def __init__(self, creds: Credentials) -> None:
        self.member_id = creds.member_id
        self._creds = creds

    def load(self) -> Credentials:
        return self._creds

    def refresh(self, failed: Credentials, do_refresh: Callable[[Credentials], Credentials]) -> Credentials:
        raise ViewerRejected("bitrix24_auth_expired", "the Bitrix24 session has expired", status=401)

    def endpoint_changed(self, new_client_endpoint: str) -> None:
        # The portal was renamed: its stored endpoint is updated by the app's own token chain.
        pass

    def mark_dead(self, reason: str) -> None:
        # A viewer's dead token says nothing about the app's own token chain.
        pass


def viewer_client(portal: Portal, auth_id: str) -> Bitrix24Client:
    """A client on the portal's stored endpoint authorised by the viewer's ``AUTH_ID``."""
    creds = Credentials(
        access_token=auth_id,
        refresh_token="",
        expires_at=None,
        client_endpoint=portal.client_endpoint,
        server_endpoint=portal.server_endpoint,
        member_id=portal.member_id,
    )
    return Bitrix24Client(
        _ViewerTokenStore(creds),
        oauth=None,
        limiter=coordination_backend(),
        limits=(portal.rate_capacity, portal.rate_drain),
        recorder=rest_call_recorder(portal.pk),
        timeout=settings.BITRIX24_HTTP_TIMEOUT,
        allow_http=settings.BITRIX24_ALLOW_HTTP,
    )


def _is_true(value: object) -> bool:
    return value is True or str(value).lower() in {"1", "true", "y"}


def identify_viewer(portal: Portal, auth_id: str, *, source: str) -> Viewer:
    """``user.current`` + ``user.admin`` asked with the viewer's own token, in one request, charged to
    ``source`` (the sender's address) and the portal (``portals.verification_limits``): anyone holding the
    portal's application token could otherwise make us call the portal with made-up tokens without end.
    Raises ``VerificationThrottled`` (nothing sent) once a budget is spent."""
    auth_id = (auth_id or "").strip()
    if not auth_id:
        raise ViewerRejected("bitrix24_auth_required", "X-Bitrix24-Auth is required", status=401)
    with verification_budget(source, portal.member_id):  # refunded when Bitrix24 names the viewer
        return _ask_for_viewer(portal, auth_id)


def _ask_for_viewer(portal: Portal, auth_id: str) -> Viewer:
    client = viewer_client(portal, auth_id)
    try:
        answer = client.batch({"user": ("user.current", {}), "admin": ("user.admin", {})})
        user = answer.get("user") or {}
        admin = answer.get("admin")
    except ViewerRejected:
        raise
    except errors.TokenExpired as exc:
        raise ViewerRejected("bitrix24_auth_expired", "the Bitrix24 session has expired", status=401) from exc
    except (errors.TokenDead, errors.AccessDenied) as exc:
        raise ViewerRejected("bitrix24_auth_refused", "Bitrix24 did not accept this session") from exc
    except errors.InvalidRequest as exc:
        # NO_AUTH_FOUND and friends: not a token of this portal.
        raise ViewerRejected("bitrix24_auth_refused", "Bitrix24 did not accept this session") from exc
    except errors.Bitrix24Error as exc:
        logger.info("portal %s: could not identify the viewer (%s)", portal.pk, exc.code)
        raise ViewerRejected("bitrix24_unavailable", "Bitrix24 did not answer; try again", status=503) from exc
    user_id = str(user.get("ID") or "")
    if not user_id.isdigit():
        raise ViewerRejected("bitrix24_auth_refused", "Bitrix24 did not name the user of this session")
    name = " ".join(part for part in (str(user.get("NAME") or ""), str(user.get("LAST_NAME") or "")) if part)
    return Viewer(
        user_id=int(user_id),
        name=name.strip() or f"#{user_id}",
        is_admin=_is_true(admin),
        photo=str(user.get("PERSONAL_PHOTO") or ""),
    )


def portal_of_auth_id(auth_id: str, *, source: str) -> tuple[Portal, int]:
    """The portal and user an ``AUTH_ID`` belongs to, from the OAuth server's ``app.info`` (docs/bitrix24-contract.md §1.11):
    the token must be alive, ours, and of a portal that installed the app. Charged to ``source`` like
    ``identify_viewer`` (the portal is not known before the answer)."""
    auth_id = (auth_id or "").strip()
    if not auth_id:
        raise ViewerRejected("bitrix24_auth_required", "X-Bitrix24-Auth is required", status=401)
    with verification_budget(source, ""):
        return _portal_of(auth_id)


def _portal_of(auth_id: str) -> tuple[Portal, int]:
    try:
        info = oauth_app().app_info(auth_id)
    except errors.TokenExpired as exc:
        raise ViewerRejected("bitrix24_auth_expired", "the Bitrix24 session has expired", status=401) from exc
    except errors.Bitrix24Error as exc:
        raise ViewerRejected("bitrix24_auth_refused", "Bitrix24 did not accept this session", status=401) from exc
    client_id = str(info.get("client_id") or "")
    if not hmac.compare_digest(client_id.encode(), settings.BITRIX24_CLIENT_ID.encode()):
        raise ViewerRejected("bitrix24_auth_refused", "the session belongs to another application", status=401)
    member_id = str((info.get("install") or {}).get("member_id") or "")
    portal = Portal.objects.filter(member_id=member_id).first() if member_id else None
    user_id = str(info.get("user_id") or "")
    if portal is None or not user_id.isdigit():
        raise ViewerRejected("bitrix24_auth_refused", "the app is not installed on this Bitrix24", status=401)
    return portal, int(user_id)
