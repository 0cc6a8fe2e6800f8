"""Lines: what the PBX declared, each with its settings; numbers used but never declared, to add on purpose."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from calls import dispatch
from calls.settings import selectors, services

from ..api.base import InportalView
from ..api.schema import ERRORS, READ_ERRORS, WRITE_HEADER
from ..call_settings.serializers import (
    DeclareLineSerializer,
    LineSerializer,
    LineWriteSerializer,
    UndeclaredLineSerializer,
)
from ..connections.ids import ConnectionIds


class LinesView(InportalView):
    @extend_schema(operation_id="lines_list", summary="The external lines of every connection",
                   responses={200: LineSerializer(many=True), **READ_ERRORS})
    def get(self, request: Request) -> Response:
        portal = self.portal(request)
        ids = ConnectionIds(portal)
        return Response([ids.publish(line) for line in selectors.lines(portal.pk)])


class LineView(InportalView):
    @extend_schema(operation_id="lines_update", summary="A line's settings",
                   parameters=[WRITE_HEADER], request=LineWriteSerializer, responses={200: LineSerializer, **ERRORS})
    def patch(self, request: Request, line_id: int) -> Response:
        portal = self.portal(request)
        changes = dict(request.data) if isinstance(request.data, dict) else {"": request.data}
        saved = services.update_line_settings(portal.pk, line_id, changes)
        dispatch.queue(saved.follow_ups)
        return Response(ConnectionIds(portal).publish(saved.view))


class UndeclaredLinesView(InportalView):
    @extend_schema(operation_id="lines_undeclared", summary="Numbers calls used that no PBX declared",
                   responses={200: UndeclaredLineSerializer(many=True), **READ_ERRORS})
    def get(self, request: Request) -> Response:
        portal = self.portal(request)
        ids = ConnectionIds(portal)
        return Response([ids.publish(item) for item in selectors.undeclared_lines(portal.pk)])

    @extend_schema(operation_id="lines_declare", summary="Add a number as a line of a connection, on purpose",
                   parameters=[WRITE_HEADER], request=DeclareLineSerializer, responses={201: LineSerializer, **ERRORS})
    def post(self, request: Request) -> Response:
        portal = self.portal(request)
        ids = ConnectionIds(portal)
        body = request.data if isinstance(request.data, dict) else {}
        # An id that is not one of this portal's connections is no connection (the service names the field).
        wanted = body.get("connection_id")
        saved = services.declare_line(portal.pk, ids.pk.get(wanted) if isinstance(wanted, str) else None,
                                      body.get("number"))
        dispatch.queue(saved.follow_ups)
        return Response(ids.publish(saved.view), status=201)
