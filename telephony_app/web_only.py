"""Middleware for people's pages that the PBX's signed requests skip.

A PBX request (``/api/pbx/v1/connections/…``: events, recordings, lines, ``/route``) is authenticated by
its signature alone and answers JSON in English: it has no session, no cookie, no CSRF token, no language
to negotiate, no messages and no Django login. Running those middlewares anyway was about a tenth of an
events POST's CPU, and LocaleMiddleware labelled the API's English answers with the server's language
(``Content-Language``). What the API does need stays in front of it, unwrapped, in settings.MIDDLEWARE:
the probes, the log context, SecurityMiddleware (HTTPS redirect, HSTS, nosniff, referrer policy),
CommonMiddleware (Content-Length), X-Frame-Options, the admin-host rule, the database's 503 and axes (its check wants it by name; it
only acts on a locked-out login).

Each class here is a settings.MIDDLEWARE entry for the middleware of the same name, which it runs for
every other path, hooks included (``process_view``, ``process_exception``, ``process_template_response``).
The API's documentation pages (``/api/pbx/v1/docs/`` …) are pages: they keep the whole stack.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.middleware import AuthenticationMiddleware as _Authentication
from django.contrib.messages.middleware import MessageMiddleware as _Message
from django.contrib.sessions.middleware import SessionMiddleware as _Session
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware as _CsrfView
from django.middleware.locale import LocaleMiddleware as _Locale
from whitenoise.middleware import WhiteNoiseMiddleware as _WhiteNoise

SIGNED_API_PREFIX = "/api/pbx/v1/connections/"
_HOOKS = ("process_view", "process_exception", "process_template_response")  # besides __call__


def is_signed_api(request: HttpRequest) -> bool:
    return request.path_info.startswith(SIGNED_API_PREFIX)


def _skipped_by_signed_api(inner_class: type) -> type:
    # A subclass, so that Django's checks (the admin needs sessions, auth and messages) still find it.
    def __call__(self: Any, request: HttpRequest) -> HttpResponse:
        if is_signed_api(request):
            return self.get_response(request)
        return inner_class.__call__(self, request)

    namespace: dict[str, Any] = {
        "__call__": __call__, "__module__": __name__,
        "__doc__": f"{inner_class.__module__}.{inner_class.__name__}, except for the PBX's signed requests.",
    }
    for hook in _HOOKS:
        if hasattr(inner_class, hook):
            namespace[hook] = _guarded(getattr(inner_class, hook))
    return type(inner_class.__name__, (inner_class,), namespace)


def _guarded(hook: Callable[..., Any]) -> Callable[..., Any]:
    def run(self: Any, request: HttpRequest, *args: Any) -> Any:
        return None if is_signed_api(request) else hook(self, request, *args)

    return run


WhiteNoiseMiddleware = _skipped_by_signed_api(_WhiteNoise)
SessionMiddleware = _skipped_by_signed_api(_Session)
LocaleMiddleware = _skipped_by_signed_api(_Locale)
CsrfViewMiddleware = _skipped_by_signed_api(_CsrfView)
AuthenticationMiddleware = _skipped_by_signed_api(_Authentication)
MessageMiddleware = _skipped_by_signed_api(_Message)
