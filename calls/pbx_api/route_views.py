"""``POST /api/pbx/v1/connections/{connection_id}/route``: the PBX's dial plan asks who takes a call.

Authentication is the PBX API's (Standard Webhooks, ``PbxSignatureAuthentication``). Unlike the other
endpoints, the answer is computed *outside* a database transaction: the lookup may wait for Bitrix24
for up to the routing deadline, and holding a transaction (on SQLite: the write lock) that long
would stall every other PBX request. The ``webhook-id`` rule still holds: a repeat within 24 hours
gets the first answer back; two copies racing each other are both answered (routing only reads and
records, so answering twice does no harm).

A cache hit costs one cache round trip (the receipt, when receipts live in the cache, and
everything ``calls.routing.lookup`` needs, in one ``get_many``), the ``RouteDecision`` insert and the
receipt write (see ``calls.pbx_api.receipts`` for where receipts are kept).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, OperationalError, connection, transaction
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

import inputguard
from calls.pbx_api.intake import load_json
from calls.pbx_api.receipts import (
    cached_receipt,
    refusal,
    remember_in_cache,
    remember_in_database,
    route_receipt_key,
    route_receipts_in_cache,
    stored_receipt,
)
from calls.pbx_api.responses import PbxAnswer, error_body
from calls.pbx_api.schema import SIGNATURE_HEADERS
from calls.pbx_api.serializers import ErrorSerializer
from calls.pbx_api.views import PbxApiView
from calls.routing.lookup import decide_route, fallback_route, record_decision, route_query
from calls.routing.tasks import request_warm_up

logger = logging.getLogger(__name__)

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
    if poison := inputguard.find_poison(data):
        field, problem = poison
        return None, PbxAnswer(400, error_body("invalid_body", "The route request is invalid.", {field: [problem]}))
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


def route(connection: Any, webhook_id: str, body: bytes) -> PbxAnswer:
    # Parsing the body first reads nothing: it only tells which cache entries to fetch along with
    # the receipt. The answers keep their order: replay, then 409, then 400, then the route.
    values, invalid = _validate(body)
    query = route_query(connection, values["client_number"], values["line_number"]) if values else None
    in_cache = route_receipts_in_cache()
    receipt_key = route_receipt_key(connection.pk, webhook_id)
    try:
        if in_cache:
            found = cache.get_many([receipt_key, *(query.cache_keys() if query else [])])
            replayed = cached_receipt(found.get(receipt_key))
        else:
            replayed = stored_receipt(connection.pk, webhook_id)
            found = cache.get_many(query.cache_keys()) if query and replayed is None else {}
    except Exception as exc:  # the cache (Redis) is down: the client is waiting, answer without it
        logger.warning("/route without the cache (%s: %s): the line's fallback", type(exc).__name__, exc)
        return _route_without_cache(connection, webhook_id, query, invalid)
    if replayed is not None:
        return replayed
    refused = refusal(connection)
    if refused is not None:
        return refused
    if invalid is not None:
        _remember(connection.pk, webhook_id, invalid, in_cache=in_cache)
        return invalid
    assert query is not None
    # The lookup (which may wait for Bitrix24) runs outside any transaction.
    result = decide_route(connection, query=query, prefetched=found)
    if result.warm_up:
        request_warm_up(connection.portal_id, result.client_number)
    answer = PbxAnswer(200, result.as_response())
    if in_cache:
        # The decision first: once it is stored, a lost receipt only means a retry is routed again.
        record_decision(connection, result)
        remember_in_cache(connection.pk, webhook_id, answer)
    else:
        with transaction.atomic():
            record_decision(connection, result)
            remember_in_database(connection.pk, webhook_id, answer)
    return answer


def _route_without_cache(connection: Any, webhook_id: str, query: Any, invalid: PbxAnswer | None) -> PbxAnswer:
    """No cache: no receipts there, no CRM entries, no Bitrix24 round trip to keep; the receipt and the
    decision go to the database (a retry within 24 h gets this answer back)."""
    replayed = stored_receipt(connection.pk, webhook_id)
    if replayed is not None:
        return replayed
    refused = refusal(connection)
    if refused is not None:
        return refused
    if invalid is not None:
        remember_in_database(connection.pk, webhook_id, invalid)
        return invalid
    result = fallback_route(connection, query)
    answer = PbxAnswer(200, result.as_response())
    with transaction.atomic():
        record_decision(connection, result)
        remember_in_database(connection.pk, webhook_id, answer)
    return answer


def _remember(connection_id: int, webhook_id: str, answer: PbxAnswer, *, in_cache: bool) -> None:
    if in_cache:
        remember_in_cache(connection_id, webhook_id, answer)
    else:
        remember_in_database(connection_id, webhook_id, answer)


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
        try:
            with statement_timeout(settings.ROUTE_DB_TIMEOUT):
                answer = route(auth.connection, auth.webhook_id, auth.body)
        except OperationalError as exc:  # the database hangs (or is gone): the client is waiting
            logger.warning("/route without the database (%s): the PBX's own plan", type(exc).__name__)
            answer = PbxAnswer(200, {"extension": None, "user_id": None, "reason": "none", "crm_entity": None})
        return self.answer(answer)


@contextmanager
def statement_timeout(seconds: float) -> Iterator[None]:
    """On PostgreSQL, no statement of this request may take longer than ``seconds`` (the 1 s promise): a
    hung database cancels it (``OperationalError``) instead of holding the PBX's dial plan."""
    if connection.vendor != "postgresql" or seconds <= 0:
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = %s", [int(seconds * 1000)])
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("RESET statement_timeout")
        except DatabaseError:  # a broken connection is thrown away at the end of the request anyway
            connection.close_if_unusable_or_obsolete()
