"""Every request starts with an empty log context: a server thread serves one request after another,
and ids bound while handling one must not label the next one's lines."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

import logcontext


class LogContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        logcontext.clear()
        try:
            return self.get_response(request)
        finally:
            logcontext.clear()
