"""Every in-portal API error as ``{"error": code, "detail": text, "fields": {name: [messages]}}``.

``detail`` is in the viewer's language (the view runs under it). A 400 names each bad field, and the
request changed nothing (services validate before they write, inside one transaction)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.utils.translation import gettext as _
from rest_framework import exceptions
from rest_framework.response import Response


class ApiError(exceptions.APIException):
    """An answer with our own code: ``ApiError("pbx_unreachable", _("…"), status=502)``."""

    def __init__(self, code: str, detail: str, *, status: int = 400, fields: dict[str, list[str]] | None = None) -> None:
        self.status_code = status
        self.code = code
        self.fields = fields or {}
        super().__init__(detail=detail, code=code)


def error_body(code: str, detail: str, fields: dict[str, list[str]] | None = None) -> dict[str, Any]:
    return {"error": code, "detail": detail, "fields": fields or {}}


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail → ``{"a.b": ["message"]}``."""
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            out.update(_flatten(value, name))
        return out
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            return {prefix or "non_field_errors": [str(item) for item in detail]}
        out = {}
        for index, item in enumerate(detail):
            out.update(_flatten(item, f"{prefix}.{index}" if prefix else str(index)))
        return out
    return {prefix or "non_field_errors": [str(detail)]}


def _django_fields(exc: DjangoValidationError) -> dict[str, list[str]]:
    if hasattr(exc, "error_dict"):
        return {name: [str(m) for e in errors for m in e.messages] for name, errors in exc.error_dict.items()}
    return {"non_field_errors": [str(m) for m in exc.messages]}


def inportal_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    headers: dict[str, str] = {}
    if isinstance(exc, ApiError):
        body, status = error_body(exc.code, str(exc.detail), exc.fields), exc.status_code
    elif isinstance(exc, DjangoValidationError):
        body, status = error_body("invalid", _("Some fields are not valid."), _django_fields(exc)), 400
    elif isinstance(exc, exceptions.ValidationError):
        body, status = error_body("invalid", _("Some fields are not valid."), _flatten(exc.detail)), 400
    elif isinstance(exc, exceptions.NotAuthenticated):
        body, status = error_body("not_authenticated", _("Open the app from Bitrix24 to start a session.")), 401
    elif isinstance(exc, exceptions.AuthenticationFailed):
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else "invalid_session"
        body, status = error_body(str(code), str(exc.detail)), 401
    elif isinstance(exc, Http404 | exceptions.NotFound):
        body, status = error_body("not_found", _("Not found.")), 404
    elif isinstance(exc, DjangoPermissionDenied | exceptions.PermissionDenied):
        code = exc.get_codes() if isinstance(exc, exceptions.APIException) else "forbidden"
        detail = str(exc.detail) if isinstance(exc, exceptions.APIException) else _("You may not do this.")
        body, status = error_body(str(code) if isinstance(code, str) else "forbidden", detail), 403
    elif isinstance(exc, exceptions.APIException):
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        body, status = error_body(str(code), str(exc.detail)), exc.status_code
        if isinstance(exc, exceptions.Throttled) and exc.wait:
            headers["Retry-After"] = str(int(exc.wait))
    else:
        return None
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="bitrix24-app"'
    return Response(body, status=status, headers=headers or None)
