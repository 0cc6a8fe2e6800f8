"""``GET wizard`` / ``POST wizard``: the portal's place in the setup wizard."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from ..api.base import InportalView
from ..api.schema import ERRORS, READ_ERRORS, WRITE_HEADER
from .selectors import wizard_of
from .services import STEPS, save_wizard


class WizardSerializer(serializers.Serializer):
    step = serializers.ChoiceField(choices=STEPS)
    done = serializers.BooleanField()
    visited = serializers.ListField(child=serializers.CharField(), read_only=True,
                                    help_text="the steps (ids as in step) the admin has been to, in order")
    finished_at = serializers.DateTimeField(allow_null=True, read_only=True)


class WizardWriteSerializer(serializers.Serializer):
    step = serializers.ChoiceField(choices=STEPS, required=False)
    done = serializers.BooleanField(required=False)

    def validate(self, attrs: dict) -> dict:
        if not attrs:
            raise serializers.ValidationError({"step": [_("Send a step or done.")]})
        return attrs


class WizardView(InportalView):
    @extend_schema(operation_id="wizard_read", responses={200: WizardSerializer, **READ_ERRORS})
    def get(self, request: Request) -> Response:
        return Response(wizard_of(self.portal(request).pk))

    @extend_schema(operation_id="wizard_save", summary="Move to a step, or finish (then call installFinish)",
                   parameters=[WRITE_HEADER], request=WizardWriteSerializer, responses={200: WizardSerializer, **ERRORS})
    def post(self, request: Request) -> Response:
        body = WizardWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        portal = self.portal(request)
        save_wizard(portal.pk, step=body.validated_data.get("step"), done=body.validated_data.get("done"),
                    user_id=self.viewer(request).user_id)
        return Response(wizard_of(portal.pk))
