"""PBX API views: authenticate (calls.pbx_api.authentication), hand the raw body to a service, answer."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils import translation
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from calls import dispatch
from calls.connections.activity import note_signed_request
from calls.lines.services import replace_lines
from calls.pbx_api.authentication import HasPbxSignature, PbxAuth, PbxSignatureAuthentication
from calls.pbx_api.errors import pbx_exception_handler
from calls.pbx_api.intake import receive_events, receive_recording, spool_and_verify
from calls.pbx_api.responses import PbxAnswer, error_body
from calls.pbx_api.schema import SIGNATURE_HEADERS, EventsAutoSchema, PbxAutoSchema
from calls.pbx_api.serializers import (
    ErrorSerializer,
    EventsAcceptedSerializer,
    LineSerializer,
    LineStateSerializer,
    RecordingAcceptedSerializer,
    RecordingUploadSerializer,
)

_ERRORS = {
    401: OpenApiResponse(ErrorSerializer, description="Missing or wrong signature, or stale timestamp."),
    404: OpenApiResponse(ErrorSerializer, description="Unknown connection."),
    409: OpenApiResponse(ErrorSerializer, description="Connection disabled or portal uninstalled."),
    413: OpenApiResponse(ErrorSerializer, description="Body too large."),
}
_BAD_REQUEST = {400: OpenApiResponse(ErrorSerializer, description="Invalid; says which event/line and field.")}


class PbxApiView(APIView):
    authentication_classes = [PbxSignatureAuthentication]
    permission_classes = [HasPbxSignature]
    renderer_classes = [JSONRenderer]
    schema = PbxAutoSchema()
    # The body is read raw (the signature covers its exact bytes); no DRF parser touches it.
    parser_classes: list = []

    def get_exception_handler(self):  # type: ignore[no-untyped-def]
        return pbx_exception_handler

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        # The PBX API speaks English (docs/pbx-api.md), whatever the portal's or the server's language.
        with translation.override("en"):
            return super().dispatch(request, *args, **kwargs)

    @staticmethod
    def pbx_auth(request: Request) -> PbxAuth:
        assert isinstance(request.auth, PbxAuth)
        return request.auth

    @staticmethod
    def answer(answer: PbxAnswer) -> Response:
        dispatch.queue(answer.follow_ups)
        return Response(answer.body, status=answer.status)


_EVENT_EXAMPLES = [
    OpenApiExample(
        "Incoming call starts",
        value={
            "event_id": "evt-0001", "type": "call.started", "call_id": "1700000000.42",
            "occurred_at": "2025-03-01T12:00:00+03:00", "direction": "inbound",
            "client_number": "+7 (916) 123-45-67", "line_number": "84951234567",
        },
        request_only=True,
    ),
    OpenApiExample(
        "A batch",
        value=[
            {"event_id": "evt-0002", "type": "call.ringing", "call_id": "1700000000.42",
             "occurred_at": "2025-03-01T12:00:01+03:00", "extensions": ["101", "102"]},
            {"event_id": "evt-0003", "type": "call.answered", "call_id": "1700000000.42",
             "occurred_at": "2025-03-01T12:00:09+03:00", "extension": "102"},
        ],
        request_only=True,
    ),
]


class EventsView(PbxApiView):
    schema = EventsAutoSchema()

    @extend_schema(
        operation_id="post_events",
        summary="Send call events (one object or an array of up to 100)",
        description="All events are validated before any is accepted. 202 once stored durably; an event_id "
        "seen before on this connection counts as a duplicate and causes nothing.",
        parameters=SIGNATURE_HEADERS,
        examples=_EVENT_EXAMPLES,
        responses={202: EventsAcceptedSerializer, **_BAD_REQUEST, **_ERRORS},
        tags=["events"],
    )
    def post(self, request: Request, connection_id: str) -> Response:
        auth = self.pbx_auth(request)
        assert auth.body is not None
        return self.answer(receive_events(auth.connection, auth.webhook_id, auth.body))


class RecordingView(PbxApiView):
    # Recordings are large: the body is streamed to disk and verified on the way (see authentication).
    stream_request_body = True

    @extend_schema(
        operation_id="upload_recording",
        summary="Upload a call's recording (raw audio body or multipart field `file`)",
        description="For PBXs that cannot expose recordings by URL. The signature covers the raw body. "
        "Uploading the same audio for the same call again is a duplicate.",
        parameters=SIGNATURE_HEADERS,
        request={"audio/*": OpenApiTypes.BINARY, "multipart/form-data": RecordingUploadSerializer},
        responses={202: RecordingAcceptedSerializer, **_BAD_REQUEST, **_ERRORS},
        tags=["recordings"],
    )
    def post(self, request: Request, connection_id: str, call_id: str) -> Response:
        auth = self.pbx_auth(request)
        assert auth.verifier is not None
        django_request = request._request
        spooled = spool_and_verify(
            django_request,
            auth.verifier,
            content_length=_content_length(django_request.META),
            max_bytes=int(settings.RECORDING_MAX_BYTES),
        )
        note_signed_request(auth.connection)
        return self.answer(
            receive_recording(
                auth.connection,
                call_id,
                spooled,
                webhook_id=auth.webhook_id,
                content_type=django_request.META.get("CONTENT_TYPE", ""),
                content_disposition=django_request.headers.get("Content-Disposition", ""),
            )
        )


class LinesView(PbxApiView):
    @extend_schema(
        operation_id="put_lines",
        summary="Replace the PBX's external numbers",
        description="The connector stores the list and answers at once; a worker then registers, renames "
        "and removes the portal's Bitrix24 external lines to match. Numbers are normalised to E.164 with the "
        "portal's default country. 200 with the resulting list as it is now: a line Bitrix24 does not have "
        "yet says registered_in_bitrix24=false (true once the worker has synced it).",
        parameters=SIGNATURE_HEADERS,
        request=LineSerializer(many=True),
        responses={200: LineStateSerializer(many=True), **_BAD_REQUEST, **_ERRORS},
        tags=["lines"],
    )
    def put(self, request: Request, connection_id: str) -> Response:
        auth = self.pbx_auth(request)
        assert auth.body is not None
        return self.answer(replace_lines(auth.connection, auth.webhook_id, auth.body))


def _content_length(meta: dict[str, Any]) -> int | None:
    try:
        return int(meta.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


def not_found(request: HttpRequest, path: str = "") -> JsonResponse:
    """Any other path under the PBX API: the API's error body, not Django's HTML page."""
    return JsonResponse(error_body("not_found", "There is no such PBX API endpoint; see /api/pbx/v1/docs/."),
                        status=404)
