"""OpenAPI pieces shared by the in-portal API views (the schema is served at ``api/v1/schema/``)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from .permissions import AUTH_HEADER


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="machine-readable code")
    detail = serializers.CharField(help_text="human text in the viewer's language")
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()),
                                   help_text="field name → messages (400)")


class FrameSessionScheme(OpenApiAuthenticationExtension):
    target_class = "inportal.api.authentication.FrameSessionAuthentication"
    name = "frameSession"

    def get_security_definition(self, auto_schema):  # type: ignore[no-untyped-def]
        return {"type": "http", "scheme": "bearer", "description": "the session token from #app-boot or POST session"}


ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Bad input: names the field; nothing was changed."),
    401: OpenApiResponse(ErrorSerializer, description="No, forged or expired session; expired Bitrix24 AUTH_ID."),
    403: OpenApiResponse(ErrorSerializer, description="Not a portal administrator (writes), or AUTH_ID of another user."),
    404: OpenApiResponse(ErrorSerializer, description="Not found on this portal."),
}
READ_ERRORS = {code: ERRORS[code] for code in (401, 404)}

WRITE_HEADER = OpenApiParameter(
    AUTH_HEADER, str, OpenApiParameter.HEADER, required=True,
    description="The viewer's current AUTH_ID (JS SDK): Bitrix24 is asked whether they are an admin.",
)
