"""Call handling: the portal-wide settings (CRM creation, routing, missed-call owner, chat, country, recordings)."""

from __future__ import annotations

from calls.settings import selectors, services
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from ..api.base import InportalView
from ..api.schema import ERRORS, READ_ERRORS, WRITE_HEADER


class CallSettingsView(InportalView):
    @extend_schema(operation_id="settings_read", summary="The portal's call handling",
                   description="crm_create off|incoming|outgoing|both, route_to_responsible, missed_call_owner "
                               "{strategy responsible|last_rang|fixed, user_id, chain}, add_to_chat, default_country, "
                               "recordings, default_user_id, callback_user_id.",
                   responses={200: OpenApiTypes.OBJECT, **READ_ERRORS})
    def get(self, request: Request) -> Response:
        return Response(selectors.portal_settings(self.portal(request).pk))

    @extend_schema(operation_id="settings_update", summary="Change the call handling (applies to the next call)",
                   parameters=[WRITE_HEADER], request=OpenApiTypes.OBJECT,
                   responses={200: OpenApiTypes.OBJECT, **ERRORS})
    def put(self, request: Request) -> Response:
        changes = dict(request.data) if isinstance(request.data, dict) else {"": request.data}
        return Response(services.update_portal_settings(self.portal(request).pk, changes))
