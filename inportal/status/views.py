"""``GET status`` and ``POST repairs/{id}``."""

from __future__ import annotations

from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from ..api.base import InportalView
from ..api.errors import ApiError
from ..api.schema import ERRORS, READ_ERRORS, WRITE_HEADER
from .areas import AREA_IDS, portal_status
from .repairs import REPAIRS, run_repair


class ActionSerializer(serializers.Serializer):
    id = serializers.ChoiceField(choices=REPAIRS)
    label = serializers.CharField()


class AreaSerializer(serializers.Serializer):
    id = serializers.ChoiceField(choices=AREA_IDS)
    state = serializers.ChoiceField(choices=["green", "amber", "red"])
    title = serializers.CharField()
    detail = serializers.CharField(help_text="what it means and what to do, in the viewer's language")
    action = ActionSerializer(allow_null=True, help_text="a one-click repair, when the app can repair it")
    at = serializers.DateTimeField(allow_null=True)
    facts = serializers.DictField()


class StatusSerializer(serializers.Serializer):
    areas = AreaSerializer(many=True)


class RepairResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    detail = serializers.CharField()
    facts = serializers.DictField()
    areas = AreaSerializer(many=True, help_text="the status after the repair")


class StatusView(InportalView):
    @extend_schema(operation_id="status", summary="Health of every area", responses={200: StatusSerializer, **READ_ERRORS})
    def get(self, request: Request) -> Response:
        return Response({"areas": [area.as_dict() for area in portal_status(self.portal(request))]})


class RepairView(InportalView):
    @extend_schema(
        operation_id="repair", summary="Run a one-click repair",
        parameters=[WRITE_HEADER, OpenApiParameter("repair_id", str, OpenApiParameter.PATH, enum=list(REPAIRS))],
        request=None, responses={200: RepairResultSerializer, **ERRORS},
    )
    def post(self, request: Request, repair_id: str) -> Response:
        if repair_id not in REPAIRS:
            raise ApiError("unknown_repair", _("There is no such repair."), status=404)
        portal = self.portal(request)
        result = run_repair(portal, repair_id)
        return Response({"ok": result.ok, "detail": result.detail, "facts": result.facts,
                         "areas": [area.as_dict() for area in portal_status(portal)]})
