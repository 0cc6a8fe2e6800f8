"""Staff only: anonymous visitors are sent to the console's sign-in, signed-in non-staff users are refused.
With ``ADMIN_HOST`` set the console, like the Django admin, exists only on that host (elsewhere: 404), so its
sign-in page is not there to be found on the public host."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render


def staff_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path(), "console:login")
        if not (user.is_active and user.is_staff):
            return render(request, "console/refused.html", status=403)
        return view(request, *args, **kwargs)

    return wrapper


def on_admin_host(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        admin_host = getattr(settings, "ADMIN_HOST", "")
        if admin_host and request.get_host().lower() != admin_host.lower():
            raise Http404("no such page")
        return view(request, *args, **kwargs)

    return wrapper
