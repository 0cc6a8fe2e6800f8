"""Employees: every Bitrix24 user with their extension, this app's overrides and call settings."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from calls import dispatch
from calls.settings import selectors, services

from ..api.base import InportalView
from ..api.schema import ERRORS, READ_ERRORS, WRITE_HEADER
from ..call_settings.serializers import (
    EmployeesSerializer,
    EmployeeSyncSerializer,
    UnownedExtensionSerializer,
    UserSettingsReadSerializer,
    UserSettingsSerializer,
)
from ..connections.ids import ConnectionIds


def _employees(portal_id: int, ids: ConnectionIds) -> dict[str, Any]:
    data = selectors.employees(portal_id)
    for user in data["users"]:
        user["overrides"] = [ids.publish(o) for o in user["overrides"]]
    data["unowned_extensions"] = [ids.publish(e) for e in data["unowned_extensions"]]
    return data


def _user(portal_id: int, user_id: int, ids: ConnectionIds) -> dict[str, Any]:
    data = selectors.user_settings(portal_id, user_id)
    data["overrides"] = [ids.publish(o) for o in data["overrides"]]
    return data


class EmployeesView(InportalView):
    @extend_schema(operation_id="employees_list", summary="Every Bitrix24 user with extension and call settings",
                   responses={200: EmployeesSerializer, **READ_ERRORS})
    def get(self, request: Request) -> Response:
        portal = self.portal(request)
        return Response(_employees(portal.pk, ConnectionIds(portal)))


class UnownedExtensionsView(InportalView):
    @extend_schema(operation_id="employees_unowned_extensions",
                   summary="Extensions the PBX used recently that belong to nobody",
                   responses={200: UnownedExtensionSerializer(many=True), **READ_ERRORS})
    def get(self, request: Request) -> Response:
        portal = self.portal(request)
        ids = ConnectionIds(portal)
        return Response([ids.publish(e) for e in selectors.unowned_extensions(portal.pk)])


class EmployeeView(InportalView):
    @extend_schema(operation_id="employees_update", summary="A user's call settings",
                   description="Any of the fields; `overrides` maps a connection id to the user's extension on that "
                               "PBX (\"\" to use their UF_PHONE_INNER there).",
                   parameters=[WRITE_HEADER], request=UserSettingsSerializer,
                   responses={200: UserSettingsReadSerializer, **ERRORS})
    def put(self, request: Request, user_id: int) -> Response:
        portal = self.portal(request)
        ids = ConnectionIds(portal)
        changes = dict(request.data) if isinstance(request.data, dict) else {"": request.data}
        if isinstance(changes.get("overrides"), dict):
            changes["overrides"] = {ids.to_pk(k): v for k, v in changes["overrides"].items()}
        dispatch.queue(services.update_user_settings(portal.pk, user_id, changes).follow_ups)
        return Response(_user(portal.pk, user_id, ids))


class EmployeesSyncView(InportalView):
    @extend_schema(operation_id="employees_sync", summary="Read the employees from Bitrix24 again (in the background)",
                   parameters=[WRITE_HEADER], request=None, responses={202: EmployeeSyncSerializer, **ERRORS})
    def post(self, request: Request) -> Response:
        portal = self.portal(request)
        dispatch.queue(services.request_employee_sync(portal.pk))
        return Response({"sync": selectors.employees(portal.pk)["sync"]}, status=202)
