"""``POST /api/pbx/v1/connections/{connection_id}/route``: the PBX's dial plan asks who takes a call.

Authentication is the PBX API's (Standard Webhooks, ``PbxSignatureAuthentication``). Unlike the other
endpoints, the answer is computed *outside* a database transaction: the lookup may wait for Bitrix24
for up to the routing deadline, and holding a transaction (on SQLite: the write lock) that long
would stall every other PBX request. The ``webhook-id`` rule still holds: a repeat within 24 hours
gets the first answer back; two copies racing each other are both answered (routing only reads and
records, so answering twice does no harm).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from calls.models import PbxWebhookReceipt
from calls.pbx_answers import PbxAnswer, error_body
from calls.pbx_intake import load_json
from calls.pbx_receipts import REPLAY_WINDOW, refusal
from calls.routing import decide_route, record_decision

from .schema import SIGNATURE_HEADERS
from .serializers import ErrorSerializer
from .views import PbxApiView

MAX_NUMBER_LENGTH = 64


class RouteRequestSerializer(serializers.Serializer):
    client_number = serializers.CharField(max_length=MAX_NUMBER_LENGTH, help_text="The caller, any format.")
    line_number = serializers.CharField(
        max_length=MAX_NUMBER_LENGTH, required=False, allow_blank=True, allow_null=True,
        help_text="The number the client dialled (a line of this connection).",
    )


class CrmEntitySerializer(serializers.Serializer):
    type = serializers.CharField()
    id = serializers.IntegerField()


class RouteAnswerSerializer(serializers.Serializer):
    extension = serializers.CharField(allow_null=True, help_text="Ring this extension; null: use your own plan.")
    user_id = serializers.IntegerField(allow_null=True, help_text="The Bitrix24 user behind the extension.")
    reason = serializers.ChoiceField(choices=["crm_responsible", "line_default", "none"])
    crm_entity = CrmEntitySerializer(allow_null=True)


def _validate(body: bytes) -> tuple[dict[str, str] | None, PbxAnswer | None]:
    try:
        data = load_json(body)
    except (ValueError, RecursionError) as exc:
        return None, PbxAnswer(400, error_body("invalid_json", f"The body is not valid JSON: {exc}"))
    if not isinstance(data, dict):
        return None, PbxAnswer(400, error_body("invalid_body", "The body must be a JSON object."))
    serializer = RouteRequestSerializer(data=data)
    if not serializer.is_valid():
        fields = {name: [str(m) for m in messages] for name, messages in serializer.errors.items()}
        return None, PbxAnswer(400, error_body("invalid_body", "The route request is invalid.", fields))
    values = serializer.validated_data
    client = values["client_number"].strip()
    if not any(ch.isdigit() for ch in client):
        fields = {"client_number": ["Must contain a phone number."]}
        return None, PbxAnswer(400, error_body("invalid_body", "The route request is invalid.", fields))
    return {"client_number": client, "line_number": (values.get("line_number") or "").strip()}, None


def _replayed(connection_id: int, webhook_id: str) -> PbxAnswer | None:
    receipt = (
        PbxWebhookReceipt.objects.filter(
            connection_id=connection_id, webhook_id=webhook_id, created_at__gte=timezone.now() - REPLAY_WINDOW
        )
        .exclude(status_code=0)
        .only("status_code", "response_body")
        .first()
    )
    return PbxAnswer(receipt.status_code, receipt.response_body) if receipt else None


def _remember(connection_id: int, webhook_id: str, answer: PbxAnswer) -> None:
    # ON CONFLICT DO NOTHING: a concurrent copy of the same message stored its (equivalent) answer
    # first; no savepoint or read needed, so the answer costs one insert.
    PbxWebhookReceipt.objects.bulk_create(
        [PbxWebhookReceipt(connection_id=connection_id, webhook_id=webhook_id, status_code=answer.status,
                           response_body=answer.body)],
        ignore_conflicts=True,
    )


def route(connection: Any, webhook_id: str, body: bytes) -> PbxAnswer:
    replayed = _replayed(connection.pk, webhook_id)
    if replayed is not None:
        return replayed
    refused = refusal(connection)
    if refused is not None:
        return refused
    values, invalid = _validate(body)
    if invalid is not None:
        _remember(connection.pk, webhook_id, invalid)
        return invalid
    assert values is not None
    # The lookup (which may wait for Bitrix24) runs outside any transaction; the two writes share one.
    result = decide_route(connection, values["client_number"], values["line_number"])
    answer = PbxAnswer(200, result.as_response())
    with transaction.atomic():
        record_decision(connection, result)
        _remember(connection.pk, webhook_id, answer)
    return answer


class RouteView(PbxApiView):
    @extend_schema(
        operation_id="route_call",
        summary="Who should take an incoming call (the client's responsible manager)",
        description=(
            "Asked by the dial plan while the client waits. Answers within 1 second even when Bitrix24 is "
            "slow or down (then with the line's fallback), and within milliseconds for a number seen in the "
            "last couple of minutes. The manager must have an extension and, if the portal tracks working "
            "time, have their working day open. The call's later `call.started` is registered in Bitrix24 "
            "with the user and CRM object answered here."
        ),
        parameters=SIGNATURE_HEADERS,
        request=RouteRequestSerializer,
        examples=[
            OpenApiExample("Request", value={"client_number": "+7 916 555-12-34", "line_number": "+74951234567"},
                           request_only=True),
            OpenApiExample("Routed to the responsible manager", response_only=True, value={
                "extension": "101", "user_id": 12, "reason": "crm_responsible",
                "crm_entity": {"type": "CONTACT", "id": 797}}),
            OpenApiExample("Unknown client, line fallback", response_only=True, value={
                "extension": "600", "user_id": None, "reason": "line_default", "crm_entity": None}),
        ],
        responses={
            200: RouteAnswerSerializer,
            400: OpenApiResponse(ErrorSerializer, description="Invalid body; says which field."),
            401: OpenApiResponse(ErrorSerializer, description="Missing or wrong signature, or stale timestamp."),
            404: OpenApiResponse(ErrorSerializer, description="Unknown connection."),
            409: OpenApiResponse(ErrorSerializer, description="Connection disabled or portal uninstalled."),
        },
        tags=["routing"],
    )
    def post(self, request: Request, connection_id: str) -> Response:
        auth = self.pbx_auth(request)
        assert auth.body is not None
        return self.answer(route(auth.connection, auth.webhook_id, auth.body))
