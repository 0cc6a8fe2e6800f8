"""The base of every in-portal API view: session auth, admin-checked writes, JSON, the viewer's language."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponseBase
from django.utils import translation
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from portals.models import Portal

from ..language import FALLBACK
from ..session import SessionExpired, SessionInvalid, read_session
from .authentication import FrameSessionAuthentication, FrameViewer, bearer_token
from .errors import inportal_exception_handler
from .permissions import ViewerReadsAdminWrites


def request_language(request: Any) -> str:
    """The session's language, also for an expired session (its signature still holds); else English."""
    token = bearer_token(request)
    if token:
        try:
            return read_session(token).lang
        except SessionExpired as exc:
            return exc.session.lang
        except SessionInvalid:
            pass
    return FALLBACK


class InportalView(APIView):
    authentication_classes = [FrameSessionAuthentication]
    permission_classes = [ViewerReadsAdminWrites]
    renderer_classes = [JSONRenderer]
    parser_classes = [JSONParser]

    def get_exception_handler(self):  # type: ignore[no-untyped-def]
        return inportal_exception_handler

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> HttpResponseBase:
        # Rendered inside the override: lazy messages (DRF's field errors) come out in the viewer's language.
        with translation.override(request_language(request)):
            response = super().dispatch(request, *args, **kwargs)
            render = getattr(response, "render", None)
            if callable(render) and not getattr(response, "is_rendered", True):
                render()
        return response

    def viewer(self, request: Request) -> FrameViewer:
        assert isinstance(request.user, FrameViewer)
        return request.user

    def portal(self, request: Request) -> Portal:
        return self.viewer(request).portal
