"""The Django admin on its own path (``ADMIN_URL``) and, if ``ADMIN_HOST`` is set, only on that host:
elsewhere its path is an ordinary 404, so the login page is not there to be found and hammered."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse


class AdminHostMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        admin_host = settings.ADMIN_HOST
        if admin_host and request.path_info.startswith("/" + settings.ADMIN_URL.lstrip("/")):
            if request.get_host().lower() != admin_host.lower():
                raise Http404("no such page")
        return self.get_response(request)
