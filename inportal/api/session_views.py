"""``POST session``: a fresh session token for a fresh ``AUTH_ID`` (also when the old token expired)."""

from __future__ import annotations

from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from portals.errors import VerificationThrottled
from portals.viewer import ViewerRejected, identify_viewer, portal_of_auth_id
from telephony_app.client_ip import client_ip

from ..language import frame_language
from ..session import SessionExpired, SessionInvalid, issue_session, read_session
from .authentication import bearer_token
from .base import InportalView
from .errors import ApiError
from .permissions import AUTH_HEADER, throttled_error, viewer_error
from .schema import ErrorSerializer


class SessionRequestSerializer(serializers.Serializer):
    lang = serializers.CharField(required=False, help_text="Bitrix24 LANG; default: the previous session's")


class SessionSerializer(serializers.Serializer):
    session = serializers.CharField()
    sessionExpiresAt = serializers.IntegerField()
    lang = serializers.ChoiceField(choices=["ru", "en"])
    isAdmin = serializers.BooleanField()
    user = serializers.DictField()


class SessionView(InportalView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        operation_id="session_refresh",
        summary="Refresh the frame session",
        description="Send the current AUTH_ID from the JS SDK in X-Bitrix24-Auth (and the old token, if any, as "
                    "Bearer). The token's portal and user come from Bitrix24, never from the request.",
        parameters=[OpenApiParameter(AUTH_HEADER, str, OpenApiParameter.HEADER, required=True)],
        request=SessionRequestSerializer,
        responses={200: SessionSerializer, 401: OpenApiResponse(ErrorSerializer), 403: OpenApiResponse(ErrorSerializer)},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        body = SessionRequestSerializer(data=request.data if isinstance(request.data, dict) else {})
        body.is_valid(raise_exception=True)
        auth_id = request.headers.get(AUTH_HEADER, "")
        source = client_ip(request)
        try:
            portal, token_user = portal_of_auth_id(auth_id, source=source)
            viewer = identify_viewer(portal, auth_id, source=source)
        except VerificationThrottled as exc:
            raise throttled_error(exc) from exc
        except ViewerRejected as exc:
            raise viewer_error(exc) from exc
        if viewer.user_id != token_user:
            raise ApiError("bitrix24_auth_mismatch", _("Bitrix24 named two different users for this session."),
                           status=403)
        previous_lang = None
        old = bearer_token(request)
        if old:
            try:
                previous = read_session(old)
            except SessionExpired as exc:
                previous = exc.session
            except SessionInvalid:
                previous = None
            if previous is not None:
                if previous.portal_id != portal.pk or previous.user_id != viewer.user_id:
                    raise ApiError("session_mismatch", _("This session belongs to another Bitrix24 or user."),
                                   status=403)
                previous_lang = previous.lang
        lang = frame_language(body.validated_data.get("lang") or previous_lang or portal.lang)
        token, session = issue_session(portal_id=portal.pk, member_id=portal.member_id, user_id=viewer.user_id,
                                       is_admin=viewer.is_admin, lang=lang)
        return Response({
            "session": token,
            "sessionExpiresAt": session.expires_at,
            "lang": session.lang,
            "isAdmin": viewer.is_admin,
            "user": {"id": viewer.user_id, "name": viewer.name},
        })

