"""A database that is down or hung answers a fast 503 the caller retries, never Django's HTML 500.

With the timeouts in settings (connect, statement, idle in transaction) a hung PostgreSQL surfaces as an
``OperationalError`` within seconds instead of holding a web worker until gunicorn kills it; this turns
that into ``503`` with ``Retry-After`` and the PBX API's error body, which PBXs retry like any 5xx.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        logger.error("database unavailable for %s %s: %s", request.method, request.path,
                     type(exception.__cause__ or exception).__name__)
        response = JsonResponse(
            {"error": "service_unavailable", "detail": "the database is not answering; retry shortly", "fields": {}},
            status=503,
        )
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
