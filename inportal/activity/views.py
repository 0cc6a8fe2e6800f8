"""Activity: recent calls (search by number or id), one call's timeline, undelivered calls and their retry."""

from __future__ import annotations

import math

from django.http import Http404
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from calls.dispatch import replay_dead_letter
from calls.models import DeadLetter

from ..api.base import InportalView
from ..api.errors import ApiError
from ..api.schema import ERRORS, READ_ERRORS, WRITE_HEADER
from ..people import names_of
from . import selectors
from .timeline import call_timeline


class CallUserSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class CallRowSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="the call's id in this API")
    origin = serializers.ChoiceField(choices=["pbx", "click_to_call", "callback"])
    direction = serializers.CharField(allow_blank=True)
    client_number = serializers.CharField(allow_blank=True)
    line_number = serializers.CharField(allow_blank=True)
    started_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    status = serializers.CharField()
    status_text = serializers.CharField()
    answered_by = serializers.CharField(allow_blank=True, help_text="extension")
    user = CallUserSerializer(allow_null=True, help_text="who the call is registered to in Bitrix24")
    registered = serializers.BooleanField()
    finished = serializers.BooleanField()
    recording = serializers.ChoiceField(choices=["attached", "failed", "none"])
    pbx_call_id = serializers.CharField(allow_null=True)
    connection = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()


class CallPageSerializer(serializers.Serializer):
    results = CallRowSerializer(many=True)
    page = serializers.IntegerField()
    pages = serializers.IntegerField()
    total = serializers.IntegerField()


class TimelineEntrySerializer(serializers.Serializer):
    at = serializers.DateTimeField(allow_null=True)
    source = serializers.ChoiceField(choices=["pbx", "bitrix24", "card", "recording", "problem", "connector"])
    text = serializers.CharField(help_text="in plain words, in the viewer's language")
    ok = serializers.BooleanField()
    detail = serializers.DictField()


class CallDetailSerializer(serializers.Serializer):
    call = CallRowSerializer()
    timeline = TimelineEntrySerializer(many=True)
    undelivered = serializers.BooleanField(help_text="an open dead letter: POST retry")


class UndeliveredSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="the dead letter")
    call = CallRowSerializer(allow_null=True)
    reason = serializers.CharField()
    detail = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    retried = serializers.IntegerField()


class RetrySerializer(serializers.Serializer):
    retried = serializers.IntegerField()


class QuerySerializer(serializers.Serializer):
    q = serializers.CharField(required=False, allow_blank=True, max_length=100)
    page = serializers.IntegerField(required=False, min_value=1, default=1)


def _names(portal, calls) -> dict[int, str]:  # type: ignore[no-untyped-def]
    return names_of(portal, {u for u in (selectors.user_of(c) for c in calls if c is not None) if u})


class CallsView(InportalView):
    @extend_schema(operation_id="calls_list", summary="Recent calls, newest first",
                   parameters=[OpenApiParameter("q", str, description="a number in any spelling, or a call id"),
                               OpenApiParameter("page", int)],
                   responses={200: CallPageSerializer, **READ_ERRORS, 400: ERRORS[400]})
    def get(self, request: Request) -> Response:
        query = QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        portal = self.portal(request)
        calls = selectors.search_calls(portal, query.validated_data.get("q", ""))
        total = calls.count()
        page = query.validated_data["page"]
        rows = list(calls[(page - 1) * selectors.PAGE_SIZE: page * selectors.PAGE_SIZE])
        names = _names(portal, rows)
        return Response({"results": [selectors.call_row(c, names) for c in rows], "page": page,
                         "pages": max(1, math.ceil(total / selectors.PAGE_SIZE)), "total": total})


class CallView(InportalView):
    @extend_schema(operation_id="calls_read", summary="A call with its timeline in plain words",
                   responses={200: CallDetailSerializer, **READ_ERRORS})
    def get(self, request: Request, call_id: str) -> Response:
        portal = self.portal(request)
        call = selectors.call_of(portal, call_id)
        if call is None:
            raise Http404
        timeline = call_timeline(call, lambda users: names_of(portal, users))
        names = _names(portal, [call])
        open_letters = DeadLetter.objects.filter(call=call, resolved_at=None).exists()
        return Response({"call": selectors.call_row(call, names), "timeline": [e.as_dict() for e in timeline],
                         "undelivered": open_letters})


class UndeliveredView(InportalView):
    @extend_schema(operation_id="calls_undelivered", summary="Calls that could not be delivered to Bitrix24",
                   responses={200: UndeliveredSerializer(many=True), **READ_ERRORS})
    def get(self, request: Request) -> Response:
        portal = self.portal(request)
        letters = selectors.undelivered(portal)
        calls = {letter.pk: selectors.call_of_letter(letter) for letter in letters}
        names = _names(portal, calls.values())
        return Response([{
            "id": letter.pk,
            "call": selectors.call_row(calls[letter.pk], names) if calls[letter.pk] else None,
            "reason": letter.reason,
            "detail": letter.detail[:1000],
            "created_at": letter.created_at,
            "retried": letter.replay_count,
        } for letter in letters])


class CallRetryView(InportalView):
    @extend_schema(operation_id="calls_retry", summary="Deliver an undelivered call again",
                   parameters=[WRITE_HEADER], request=None,
                   responses={200: RetrySerializer, **ERRORS, 409: ERRORS[400]})
    def post(self, request: Request, call_id: str) -> Response:
        portal = self.portal(request)
        call = selectors.call_of(portal, call_id)
        if call is None:
            raise Http404
        letters = [letter.pk for letter in selectors.undelivered(portal) if selectors.call_of_letter(letter) == call]
        retried = sum(1 for pk in letters if replay_dead_letter(pk))
        if not retried:
            raise ApiError("nothing_to_retry", _("This call has nothing left to deliver."), status=409)
        return Response({"retried": retried})


class LetterRetryView(InportalView):
    @extend_schema(operation_id="undelivered_retry", summary="Retry one undelivered item (also one without a call)",
                   parameters=[WRITE_HEADER], request=None,
                   responses={200: RetrySerializer, **ERRORS, 409: ERRORS[400]})
    def post(self, request: Request, letter_id: int) -> Response:
        letter = DeadLetter.objects.filter(portal=self.portal(request), pk=letter_id).first()
        if letter is None:
            raise Http404
        if not replay_dead_letter(letter.pk):
            raise ApiError("nothing_to_retry", _("This was already retried."), status=409)
        return Response({"retried": 1})
