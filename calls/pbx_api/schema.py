"""OpenAPI pieces shared by the PBX API views."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter

from calls.pbx_api.events import MAX_EVENTS_PER_REQUEST
from calls.pbx_api.serializers import EVENT_SCHEMA

SIGNATURE_HEADERS = [
    OpenApiParameter(
        "webhook-id", str, OpenApiParameter.HEADER, required=True,
        description="Unique id of this message, at most 128 characters. A repeat within 24 hours gets the "
        "first answer again and is not processed again.",
    ),
    OpenApiParameter(
        "webhook-timestamp", str, OpenApiParameter.HEADER, required=True,
        description="Unix time in seconds; more than 5 minutes away from the connector's clock → 401.",
    ),
    OpenApiParameter(
        "webhook-signature", str, OpenApiParameter.HEADER, required=True,
        description="`v1,` + Base64(HMAC-SHA256(secret, `{webhook-id}.{webhook-timestamp}.{raw body}`)); "
        "several space-separated signatures may be sent during a secret rotation.",
    ),
]


class StandardWebhooksScheme(OpenApiAuthenticationExtension):
    target_class = "calls.pbx_api.authentication.PbxSignatureAuthentication"
    name = "StandardWebhooks"

    def get_security_definition(self, auto_schema):  # type: ignore[no-untyped-def]
        return {
            "type": "apiKey",
            "in": "header",
            "name": "webhook-signature",
            "description": "Standard Webhooks signature with the connection's `whsec_` secret "
            "(see the webhook-id / webhook-timestamp / webhook-signature header parameters).",
        }


class PbxAutoSchema(AutoSchema):
    """The PBX views read their raw body (the signature covers its bytes), so they have no DRF parsers,
    from which drf-spectacular would learn the request's media type: a JSON body is what they take."""

    def map_parsers(self):  # type: ignore[no-untyped-def]
        return ["application/json"]


class EventsAutoSchema(AutoSchema):
    """The events body is one event *or* an array of up to 100 (a oneOf of the polymorphic event)."""

    def _get_request_body(self, direction="request"):  # type: ignore[no-untyped-def]

        ref = self.resolve_serializer(EVENT_SCHEMA, direction).ref
        schema = {
            "oneOf": [
                ref,
                {"type": "array", "items": ref, "minItems": 1, "maxItems": MAX_EVENTS_PER_REQUEST},
            ]
        }
        return {"content": {"application/json": {"schema": schema}}, "required": True}
