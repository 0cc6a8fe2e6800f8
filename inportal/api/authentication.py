"""DRF authentication by the frame session token (``Authorization: Bearer <token>``), no cookies."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext as _
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from portals.models import Portal

from ..session import FrameSession, SessionExpired, SessionInvalid, read_session


@dataclass(frozen=True)
class FrameViewer:
    """``request.user`` of the in-portal API: the Bitrix24 user the session was issued to."""

    session: FrameSession
    portal: Portal

    is_authenticated = True
    is_anonymous = False

    @property
    def user_id(self) -> int:
        return self.session.user_id

    @property
    def is_admin(self) -> bool:
        return self.session.is_admin


def bearer_token(request: Request) -> str | None:
    parts = get_authorization_header(request).split()
    if len(parts) != 2 or parts[0].lower() != b"bearer":
        return None
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        return None


class FrameSessionAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[FrameViewer, FrameSession] | None:
        token = bearer_token(request)
        if token is None:
            if get_authorization_header(request):
                raise exceptions.AuthenticationFailed(_("The session is not valid; open the app again."), "invalid_session")
            return None
        try:
            session = read_session(token)
        except SessionExpired as exc:
            raise exceptions.AuthenticationFailed(_("The session has expired; refresh it."), "session_expired") from exc
        except SessionInvalid as exc:
            raise exceptions.AuthenticationFailed(_("The session is not valid; open the app again."), "invalid_session") from exc
        portal = Portal.objects.filter(pk=session.portal_id, member_id=session.member_id).first()
        if portal is None or portal.status == Portal.Status.UNINSTALLED:
            raise exceptions.AuthenticationFailed(_("The app is no longer installed on this Bitrix24."), "invalid_session")
        return FrameViewer(session=session, portal=portal), session

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="bitrix24-app"'
