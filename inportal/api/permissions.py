"""Who may do what: any viewer of the portal reads; only a portal admin changes anything.

Every write carries the viewer's current ``AUTH_ID`` (``X-Bitrix24-Auth``, from the JS SDK) and is
checked against Bitrix24 itself before the view runs: ``user.current`` + ``user.admin`` asked with that
token (``portals.viewer``) must name the session's user and say they are an admin. The session's own
admin flag only decides what the page shows; it is never trusted for a change.
"""

from __future__ import annotations

from django.utils.translation import gettext as _
from rest_framework import exceptions, permissions
from rest_framework.request import Request

from portals.errors import VerificationThrottled
from portals.viewer import ViewerRejected, identify_viewer
from telephony_app.client_ip import client_ip

from .authentication import FrameViewer
from .errors import ApiError

AUTH_HEADER = "X-Bitrix24-Auth"

_VIEWER_MESSAGES = {
    "bitrix24_auth_required": lambda: _("Send the current Bitrix24 AUTH_ID in X-Bitrix24-Auth."),
    "bitrix24_auth_expired": lambda: _("The Bitrix24 session has expired; get a fresh AUTH_ID and try again."),
    "bitrix24_auth_refused": lambda: _("Bitrix24 did not accept this session; open the app again."),
    "bitrix24_unavailable": lambda: _("Bitrix24 did not answer; try again in a minute."),
}


def viewer_error(exc: ViewerRejected) -> ApiError:
    message = _VIEWER_MESSAGES.get(exc.code, _VIEWER_MESSAGES["bitrix24_auth_refused"])()
    return ApiError(exc.code, message, status=exc.status)


def throttled_error(exc: VerificationThrottled) -> exceptions.Throttled:
    return exceptions.Throttled(
        wait=exc.retry_after, detail=_("Too many sessions to confirm with Bitrix24 from here; try again in a minute."))


def confirm_admin(request: Request) -> None:
    """Ask Bitrix24 with the viewer's own token; raise unless it is the session's user and an admin."""
    viewer = request.user
    assert isinstance(viewer, FrameViewer)
    try:
        found = identify_viewer(viewer.portal, request.headers.get(AUTH_HEADER, ""), source=client_ip(request))
    except VerificationThrottled as exc:
        raise throttled_error(exc) from exc
    except ViewerRejected as exc:
        raise viewer_error(exc) from exc
    if found.user_id != viewer.user_id:
        raise ApiError("bitrix24_auth_mismatch", _("This Bitrix24 session belongs to another user; open the app again."),
                       status=403)
    if not found.is_admin:
        raise ApiError("admin_required", _("Only a Bitrix24 administrator can change the connector's settings."),
                       status=403)


class ViewerReadsAdminWrites(permissions.BasePermission):
    def has_permission(self, request: Request, view: object) -> bool:
        if not isinstance(request.user, FrameViewer):
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        confirm_admin(request)
        return True
