"""PBX connections: list, create (secret once), change, rotate, test, check."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from calls.models import PbxConnection

from ..api.base import InportalView
from ..api.schema import ERRORS, READ_ERRORS, WRITE_HEADER
from . import services
from .serializers import (
    CheckSerializer,
    ConnectionSerializer,
    ConnectionTestSerializer,
    ConnectionWriteSerializer,
    IssuedConnectionSerializer,
    RotatedSerializer,
    RotateSerializer,
    connection_data,
    test_data,
)


class ConnectionMixin:
    def connection(self, request: Request, connection_id: str) -> PbxConnection:
        try:
            return services.connection_of(self.portal(request), connection_id)  # type: ignore[attr-defined]
        except PbxConnection.DoesNotExist as exc:
            raise Http404 from exc


class ConnectionsView(InportalView):
    @extend_schema(operation_id="connections_list", summary="The portal's PBX connections",
                   responses={200: ConnectionSerializer(many=True), **READ_ERRORS})
    def get(self, request: Request) -> Response:
        connections = PbxConnection.objects.filter(portal=self.portal(request)).order_by("created_at", "id")
        return Response([connection_data(c) for c in connections])

    @extend_schema(operation_id="connections_create", summary="Create a connection (its secret is shown once)",
                   parameters=[WRITE_HEADER], request=ConnectionWriteSerializer,
                   responses={201: IssuedConnectionSerializer, **ERRORS})
    def post(self, request: Request) -> Response:
        body = ConnectionWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        issued = services.create(self.portal(request), body.validated_data)
        return Response({**connection_data(issued.connection), "secret": issued.secret}, status=201)


class ConnectionView(ConnectionMixin, InportalView):
    @extend_schema(operation_id="connections_read", responses={200: ConnectionSerializer, **READ_ERRORS})
    def get(self, request: Request, connection_id: str) -> Response:
        return Response(connection_data(self.connection(request, connection_id)))

    @extend_schema(operation_id="connections_update", summary="Change a connection (recording secret write-only)",
                   parameters=[WRITE_HEADER], request=ConnectionWriteSerializer,
                   responses={200: ConnectionSerializer, **ERRORS})
    def patch(self, request: Request, connection_id: str) -> Response:
        connection = self.connection(request, connection_id)
        body = ConnectionWriteSerializer(connection, data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        return Response(connection_data(services.update(connection, body.validated_data)))


class RotateView(ConnectionMixin, InportalView):
    @extend_schema(operation_id="connections_rotate", summary="New secret; the old one works during the overlap",
                   parameters=[WRITE_HEADER], request=RotateSerializer, responses={200: RotatedSerializer, **ERRORS})
    def post(self, request: Request, connection_id: str) -> Response:
        connection = self.connection(request, connection_id)
        body = RotateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        issued = services.rotate(connection, body.validated_data["overlap_hours"])
        previous = connection.secrets.exclude(expires_at=None).order_by("-expires_at").first()
        return Response({
            "secret": issued.secret,
            "previous_valid_until": previous.expires_at if previous else None,
            "connection": connection_data(connection),
        })


class ConnectionTestView(ConnectionMixin, InportalView):
    @extend_schema(operation_id="connections_test", summary="Send a signed test command to the originate URL",
                   parameters=[WRITE_HEADER], request=None, responses={200: ConnectionTestSerializer, **ERRORS})
    def post(self, request: Request, connection_id: str) -> Response:
        connection = self.connection(request, connection_id)
        services.send_test_command(connection, user_id=self.viewer(request).user_id)
        return Response(test_data(connection))


class CheckView(ConnectionMixin, InportalView):
    @extend_schema(operation_id="connections_check", summary="Has the PBX sent a signed request yet?",
                   responses={200: CheckSerializer, **READ_ERRORS})
    def get(self, request: Request, connection_id: str) -> Response:
        connection = self.connection(request, connection_id)
        return Response({
            "seen": connection.first_signed_request_at is not None,
            "first_signed_request_at": connection.first_signed_request_at,
            "last_signed_request_at": connection.last_signed_request_at,
            "last_test": test_data(connection),
        })
