"""What every page Bitrix24 frames needs: the POSTed fields, framing headers, HEAD support."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import wraps
from urllib.parse import urlsplit

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters

import inputguard

# Bitrix24 sends these in the body, older portals partly in the query string (docs/bitrix24-contract.md §1.3).
IFRAME_FIELDS = (
    "DOMAIN", "PROTOCOL", "LANG", "APP_SID", "AUTH_ID", "AUTH_EXPIRES", "REFRESH_ID", "SERVER_ENDPOINT",
    "APPLICATION_TOKEN", "APPLICATION_SCOPE", "member_id", "status", "PLACEMENT", "PLACEMENT_OPTIONS",
)
SECRET_FIELDS = ("AUTH_ID", "REFRESH_ID", "APPLICATION_TOKEN")

# The languages of the pages; Bitrix24's LANG (the viewer's interface language) picks one.
FRAME_LANGUAGES = ("ru", "en")
FALLBACK_LANGUAGE = "en"


def frame_language(lang: str | None) -> str:
    """``ru`` for Russian, English for every other Bitrix24 language (de, ua, kz, br, …)."""
    code = (lang or "").strip().lower().replace("_", "-").split("-", 1)[0]
    return code if code in FRAME_LANGUAGES else FALLBACK_LANGUAGE


def iframe_fields(request: HttpRequest) -> dict[str, str]:
    return {
        name: request.POST.get(name) or request.GET.get(name) or ""
        for name in IFRAME_FIELDS
    }


def portal_origin(client_endpoint: str) -> str:
    parts = urlsplit(client_endpoint)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


_HOSTPORT = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


def claimed_origin(fields: dict[str, str]) -> str | None:
    """The portal origin an unverified request claims (DOMAIN + PROTOCOL). Only used to let Bitrix24
    show our error page in its frame: the page carries no data and no actions."""
    host = (fields.get("DOMAIN") or "").split("/", 1)[0]
    if not _HOSTPORT.match(host):
        return None
    scheme = "https" if fields.get("PROTOCOL", "1") != "0" else "http"
    return f"{scheme}://{host}"


def frame_for(response: HttpResponse, origin: str | None) -> HttpResponse:
    """Allow framing by the verified portal only; nothing else may frame the page. frame-ancestors takes
    the place of X-Frame-Options (which cannot name an origin), so the page is exempt from it."""
    ancestors = f"'self' {origin}" if origin else "'self'"
    response["Content-Security-Policy"] = f"frame-ancestors {ancestors}"
    response.xframe_options_exempt = True
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store"
    return response


def iframe_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Bitrix24 opens the page with a cross-site POST: no CSRF token, no X-Frame-Options, HEAD -> 200,
    and the OAuth tokens in the body never reach an error report."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method == "HEAD":
            # Marketplace moderation checks that the app URL answers HEAD with 200.
            return frame_for(HttpResponse(status=200, content_type="text/html; charset=utf-8"), None)
        if request.method == "POST" and (poison := inputguard.find_poison(iframe_fields(request))):
            # Bitrix24 never sends these; looking them up would make PostgreSQL refuse the query.
            reason = gettext("The request is malformed (%(field)s: %(problem)s).") % {
                "field": poison[0], "problem": poison[1]}
            return frame_for(render(request, "portals/install_failed.html", {"reason": reason}, status=400), None)
        return view(request, *args, **kwargs)

    return csrf_exempt(xframe_options_exempt(sensitive_post_parameters(*SECRET_FIELDS)(wrapper)))
