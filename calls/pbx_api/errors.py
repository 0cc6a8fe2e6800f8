"""Every PBX API error as ``{"error", "detail", "fields"}`` (pbx-api.md), whatever raised it."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response

from calls.pbx_api.responses import PbxApiError, error_body


def pbx_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, PbxApiError):
        headers = {"WWW-Authenticate": 'Standard-Webhooks realm="pbx-api"'} if exc.status == 401 else None
        return Response(exc.answer().body, status=exc.status, headers=headers)
    if isinstance(exc, Http404):
        return Response(error_body("not_found", "Not found."), status=404)
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body("payload_too_large", "The body is too large."), status=413)
    if isinstance(exc, SuspiciousOperation):  # TooManyFieldsSent, TooManyFilesSent and the like
        return Response(error_body("invalid_body", str(exc) or "The request body is not acceptable."), status=400)
    if isinstance(exc, exceptions.APIException):
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        return Response(error_body(str(code), str(exc.detail)), status=exc.status_code)
    return None
