"""Call handling: the portal-wide settings (CRM creation, routing, missed-call owner, chat, country, recordings)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from calls import dispatch
from calls.settings import selectors, services

from ..api.base import InportalView
from ..api.schema import ERRORS, READ_ERRORS, WRITE_HEADER
from .serializers import CallSettingsSerializer, CallSettingsWriteSerializer


class CallSettingsView(InportalView):
    @extend_schema(operation_id="settings_read", summary="The portal's call handling",
                   responses={200: CallSettingsSerializer, **READ_ERRORS})
    def get(self, request: Request) -> Response:
        return Response(selectors.portal_settings(self.portal(request).pk))

    @extend_schema(operation_id="settings_update", summary="Change the call handling (applies to the next call)",
                   parameters=[WRITE_HEADER], request=CallSettingsWriteSerializer,
                   responses={200: CallSettingsSerializer, **ERRORS})
    def put(self, request: Request) -> Response:
        changes = dict(request.data) if isinstance(request.data, dict) else {"": request.data}
        saved = services.update_portal_settings(self.portal(request).pk, changes)
        dispatch.queue(saved.follow_ups)
        return Response(saved.view)
