"""Bitrix24-facing endpoints: installer, event handler, OAuth connect. Thin: services do the work.

The app page itself (``/bitrix24/app/``) belongs to the in-portal app, which also registers the page
the installer shows once an install is recorded (``portals.frame_pages``)."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import render
from django.utils import translation
from django.utils.translation import gettext
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from telephony_app.client_ip import client_ip
from telephony_app.dispatch import send_after_commit

from . import frame_pages, oauth_connect
from .errors import EventRejected, InstallRejected, VerificationThrottled
from .events import accept_event
from .iframe import claimed_origin, frame_for, frame_language, iframe_fields, iframe_view, portal_origin
from .install import events_handler_url, install_from_iframe
from .tasks import process_bitrix24_event

logger = logging.getLogger(__name__)

OAUTH_STATE_KEY = "b24_oauth_state"


@iframe_view
@sensitive_variables()
def install(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        response = render(request, "portals/open_from_bitrix24.html", status=200)
        return frame_for(response, None)
    fields = iframe_fields(request)
    with translation.override(frame_language(fields.get("LANG"))):
        try:
            outcome = install_from_iframe(fields, source=client_ip(request))
        except VerificationThrottled as exc:
            return frame_for(_throttled_page(request, exc), claimed_origin(fields))
        except InstallRejected as exc:
            logger.info("installer request refused: %s", exc)
            context = {"reason": gettext(str(exc))}
            response = render(request, "portals/install_failed.html", context, status=exc.status)
            return frame_for(response, claimed_origin(fields))
        portal = outcome.portal
        response = frame_pages.installed_page(request, outcome, fields)
        if response is None:
            context = {"portal": portal, "setup": outcome.setup, "reinstalled": outcome.reinstalled}
            response = render(request, "portals/install.html", context)
        return frame_for(response, portal_origin(portal.client_endpoint))


@csrf_exempt
@sensitive_post_parameters()
@sensitive_variables()
def events(request: HttpRequest) -> HttpResponse:
    if request.method == "HEAD":
        return HttpResponse(status=200)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        event = accept_event(request.body, source=client_ip(request))
    except VerificationThrottled as exc:
        response = HttpResponse(str(exc), status=exc.status, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(exc.retry_after)
        return response
    except EventRejected as exc:
        logger.warning("Bitrix24 event refused (%s): %s", exc.status, exc)
        return HttpResponse(str(exc), status=exc.status, content_type="text/plain; charset=utf-8")
    send_after_commit(process_bitrix24_event, event.pk)  # stored means accepted, broker or not
    return HttpResponse(f"accepted {event.pk}", content_type="text/plain; charset=utf-8")


def _throttled_page(request: HttpRequest, exc: VerificationThrottled) -> HttpResponse:
    response = render(request, "portals/install_failed.html", {"reason": str(exc)}, status=exc.status)
    response["Retry-After"] = str(exc.retry_after)
    return response


def oauth_start(request: HttpRequest) -> HttpResponse:
    portal_input = request.GET.get("portal") or request.POST.get("portal") or ""
    if not portal_input:
        return render(request, "portals/connect.html", {"events_url": events_handler_url()})
    try:
        url, state = oauth_connect.authorization_url(portal_input)
    except InstallRejected as exc:
        return render(request, "portals/connect.html", {"error": str(exc), "portal": portal_input}, status=exc.status)
    request.session[OAUTH_STATE_KEY] = state
    return HttpResponseRedirect(url)


@sensitive_variables()
def oauth_callback(request: HttpRequest) -> HttpResponse:
    expected = request.session.pop(OAUTH_STATE_KEY, "")
    try:
        outcome = oauth_connect.complete_connect(request.GET, expected, source=client_ip(request))
    except VerificationThrottled as exc:
        response = render(request, "portals/connect.html", {"error": str(exc)}, status=exc.status)
        response["Retry-After"] = str(exc.retry_after)
        return response
    except InstallRejected as exc:
        logger.info("OAuth connect refused: %s", exc)
        return render(request, "portals/connect.html", {"error": str(exc)}, status=exc.status)
    return render(request, "portals/connected.html", {"portal": outcome.portal, "setup": outcome.setup})
